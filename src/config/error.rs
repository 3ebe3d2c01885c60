//! Config errors: each with the JSON path of what is wrong and, where one helps, a hint.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where in the document, as a JSONPath: `$.stages.s2.next`.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Every error found in one config, grouped by check in the order validation runs them, not in
/// document order: settings; pools; each stage's fields, kind and params; the source; each
/// stage's pool and queue; pools serving no stage; each stage's `next`; the graph. Pools and
/// stages go by name (sorted, as JSON object keys are).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn one(path: impl Into<String>, message: impl Into<String>, hint: Option<String>) -> Self {
        ConfigErrors(vec![ConfigError { path: path.into(), message: message.into(), hint }])
    }

    /// The error at `path`, if there is one: for tests and tools.
    pub fn at(&self, path: &str) -> Option<&ConfigError> {
        self.0.iter().find(|e| e.path == path)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} error{} in the config:", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}
