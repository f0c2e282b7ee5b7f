"""The ``semjscc`` command: the entry point (:mod:`.main`) and one module per subcommand.

Subcommand modules import their work inside ``run``, not at the top, and say so here once: ``main``
imports every one of them to build the parser, and ``semjscc --help`` must not load torch, GNU Radio
or ONNX Runtime (seconds, and a missing optional dependency would break every command).
"""
