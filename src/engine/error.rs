//! Why an engine could not start.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot start thread `{name}`: {source}")]
    Spawn { name: String, source: std::io::Error },
    #[error("cannot pin worker {index} of pool `{pool}` to CPU {cpu}")]
    Pin { pool: String, index: usize, cpu: usize },
}
