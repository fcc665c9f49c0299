"""The federation's API server: the generic server's instance, its storage adapter, auth and admission."""
