"""GNU Radio Companion glue: installing the blocks path (:mod:`.install`) and compiling and running
``.grc`` flowgraphs headless (:mod:`.run`)."""
