"""Over-the-air experiments: the runner (``semjscc ota``), SigMF recordings and offline replay
(``semjscc replay``), on a Pluto or the simulated radio."""
