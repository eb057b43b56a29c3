"""Local stack for cf-invalidator: moto in server mode, extended where it falls short of AWS.

One Python process runs moto as a library (werkzeug server on a free 127.0.0.1 port) and adds
what the project needs to run ``template.yaml`` end to end. Each extension keeps its state in a
backend object that ``stack.Stack`` creates and passes to whoever uses it (moto patches get
theirs when installed); ``local/README.md`` ("Layout") lists the modules.
"""
