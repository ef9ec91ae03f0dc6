"""The paper exchange: a local server speaking Binance spot's REST API over a replayed bars file.

Orders fill by the backtest broker's rules; state lives in its own SQLite file. `config` holds
the settings, `market` the replayed bars, `matching` the pure rules, `rows` and `state` the
records and the SQLite file, `exchange` the account's operations, `binance_params` and
`binance_json` Binance's parameters and shapes, `binance_api` the HTTP handlers, `server` the
lifecycle. Nothing here imports aiohttp except `binance_api` and `server`.
"""

from quantflow_async.live.paper.config import PaperExchangeConfig

__all__ = ["PaperExchangeConfig"]
