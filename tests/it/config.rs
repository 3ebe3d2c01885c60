//! Config validation: every error with its JSON path.
