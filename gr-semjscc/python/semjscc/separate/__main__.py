"""``python -m semjscc.separate --classifier MODEL [--channel ofdm --kn 12 ...]``."""

from semjscc.separate.envelope import main

raise SystemExit(main())
