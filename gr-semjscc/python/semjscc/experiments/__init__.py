"""What produces result tables: the offline evaluation (:mod:`.eval`), the benchmarks (:mod:`.bench`)
and the over-the-air experiments (:mod:`.ota`). Nothing below imports them; the CLI does."""
