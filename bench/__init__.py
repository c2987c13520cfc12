"""`python -m bench`: the service's throughput, latency and memory, measured against a floor route."""
