//! `LineSource`: a source of your own. Each line of a reader (a file, standard input) becomes
//! one request whose payload is the line; each answer comes back to [`Answers`], which keeps
//! `(line number, response body)` in order of arrival. The run layer drives it like the built-in
//! sources: `open` before the engine starts, its own thread while it runs, `stop` at the end.

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seda::config::Plan;
use seda::engine::{Admission, Envelope, Origin, Outcome};
use seda::source::{Opened, RunsOn, Source, SourceError, ThreadBody};
use seda::stages::Request;

/// Requests submitted at a time: one hand-off into the pipeline per batch.
const BATCH: usize = 64;

/// Where answers come back: the pipeline's end calls [`Origin::finish`] on whichever worker
/// ended the request.
#[derive(Default)]
pub struct Answers {
    /// (line number, response body, whether the request completed), in order of arrival.
    pub ended: Mutex<Vec<(u64, Vec<u8>, bool)>>,
}

impl Origin for Answers {
    fn finish(&self, env: Box<Envelope>, outcome: &Outcome) {
        let completed = matches!(outcome, Outcome::Completed);
        self.ended.lock().unwrap().push((env.req.id, env.req.response.body.clone(), completed));
    }
}

pub struct LineSource<R> {
    reader: Option<R>,
    answers: Arc<Answers>,
    /// Set by the source's thread once every line is submitted.
    done: Arc<AtomicBool>,
}

impl<R: BufRead + Send + 'static> LineSource<R> {
    pub fn new(reader: R, answers: Arc<Answers>) -> Self {
        LineSource { reader: Some(reader), answers, done: Arc::new(AtomicBool::new(false)) }
    }
}

impl<R: BufRead + Send + 'static> Source for LineSource<R> {
    fn open(&mut self, _plan: &Plan) -> Result<Opened, SourceError> {
        let reader = self.reader.take().ok_or_else(|| SourceError::new("a line source is read once"))?;
        let done = self.done.clone();
        let body: ThreadBody = Box::new(move |mut submitter| {
            let mut batch = Vec::with_capacity(BATCH);
            for (number, line) in reader.lines().enumerate() {
                // A line that is not UTF-8 ends the input, as `BufRead::lines` does.
                let Ok(line) = line else { break };
                batch.push(Envelope::new(Request {
                    id: number as u64 + 1,
                    payload: line.into_bytes(),
                    ..Request::default()
                }));
                if batch.len() == BATCH {
                    // Wait for room rather than reject: a file can wait, a client could not.
                    submitter.submit_batch(&mut batch, Admission::WaitForRoom);
                }
            }
            submitter.submit_batch(&mut batch, Admission::WaitForRoom);
            done.store(true, Ordering::SeqCst);
        });
        let origins = vec![self.answers.clone() as Arc<dyn Origin>];
        Ok(Opened { origins, runs_on: RunsOn::Thread { name: "line-source", cpu: None, body } })
    }

    fn finished(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// Its thread ends by itself at the end of the input; the engine then drains what is left.
    fn stop(&mut self, _drain_timeout: Duration) {}
}
