"""The table's methods: this package's recipes and the peers' quantizers behind one interface
(:class:`~sam2_quant_plugin.eval.baselines.base.Method`); names in :mod:`.registry`."""
