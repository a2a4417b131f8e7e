"""devhost: a local host that runs a Python v2 Durable Functions app without Core Tools.

It drives the app through the real ``azure-functions`` and ``azure-functions-durable`` SDKs
the way the Functions host and the Durable extension do. See ``devhost/README.md``.
"""
