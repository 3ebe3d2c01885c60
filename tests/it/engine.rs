//! The engine: the ledger, policies, faults, timers, shutdown, pinning.
