"""The federation control plane: API server, store, controllers and the pure planners they call."""
