"""pipeline_local: run the state machine on this machine (moto's ASL interpreter, handlers in-process)."""
