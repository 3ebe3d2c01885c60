//! Why an engine could not start.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot start thread `{name}`: {source}")]
    Spawn { name: String, source: std::io::Error },
    #[error("cannot pin worker {index} of pool `{pool}` to CPU {cpu}")]
    Pin { pool: String, index: usize, cpu: usize },
    #[error(
        "pool `{pool}` runs the source in its workers, so it cannot grow or shrink: a thread standing by \
         would leave its connections unserved (give the source's entry stage a pool without `max_threads`)"
    )]
    SizedPollers { pool: String },
}
