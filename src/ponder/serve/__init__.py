"""``ponder serve``: any ponder model behind the OpenAI API (docs/serve.md).

``protocol`` (request and response bodies, error JSON), ``params`` (a request's rows and budgets, checked
against the model), ``runner`` (the engine's thread), ``render`` (answers, thinking, usage, stream deltas),
``metrics`` (Prometheus text) and ``app`` (the routes; ``create_app(model, ServeArguments(), name)``).
"""
