"""The live side: the order journal's use by a running bot, venues, the paper exchange, the runner.

Importing this package is cheap: ccxt and aiohttp load only inside the modules that need them
(the `live` extra: `pip install 'quantflow-async[live]'`).
"""
