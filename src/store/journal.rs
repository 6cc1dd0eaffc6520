//! The journal: a local append-only file that holds call and agent events while the
//! database is unreachable or slow, so that none is lost (DESIGN.md, "Store": "if the
//! database is unavailable, events are appended to a local journal file and replayed in
//! order once it returns").
//!
//! Format: JSON Lines, one [`LogEvent`] per line in its serde form (`{"call":{…}}` or
//! `{"agent":{…}}`), UTF-8, each line ended by `\n`. Events are appended a batch at a time
//! and the file is fsynced (`fdatasync`) once per batch ([`Journal::append`]): a batch is
//! durable when `append` returns.
//!
//! Replay ([`Journal::read_chunk`], then [`Journal::advance`] once the chunk is committed)
//! reads lines in file order from the first one not yet committed. Writing an event to the
//! database twice is a no-op (its id is the primary key), so a replay interrupted by a
//! crash simply starts again from the top at the next start. The file is emptied
//! ([`Journal::reset`]) only once every line was read and committed.
//!
//! Damage: a crash mid-append can leave a torn last line (no `\n`, or cut JSON); a disk
//! fault could spoil one in the middle. [`Journal::open`] ends a torn tail with `\n`, so
//! new lines never join it. A line that does not decode is reported ([`Damage`]: line
//! number and byte offset), appended as it was to the side file `<journal>.damaged` (kept
//! for inspection, never read by siaga) and skipped; the intact lines around it are
//! replayed. Reading never panics on what the file holds.
//!
//! The previous process's lines: the journal's length at [`Journal::open`] is the boundary
//! between the lines a previous process left and this process's ([`Journal::inherited`]).
//! A chunk never crosses it, so the writer can replay the previous process's lines, close
//! the calls that process left open, and only then replay this process's own
//! (`recovery.rs`).
//!
//! Quarantine: an event the database refuses for its data (a constraint, a value out of
//! range: `error_class.rs`) is moved by the writer to the side file `<journal>.quarantined`
//! ([`Journal::quarantine`]), one line in the journal's format, so nothing is lost and
//! later events are not held behind it; like `.damaged`, siaga never reads it back.
//!
//! I/O goes through `tokio::fs` (blocking calls on tokio's blocking pool), so the writer
//! task does not stall a runtime thread on `fsync`.

use super::LogEvent;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};

/// Bytes read from the file at a time at replay (a chunk of 256 events is about 90 KB).
const READ_BUFFER: usize = 256 * 1024;

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
#[error("journal {} (database.journal): cannot {action}: {source}", path.display())]
pub struct JournalError {
    /// The journal file.
    pub path: PathBuf,
    /// What failed: `open`, `append`, `read`, `truncate` …
    pub action: &'static str,
    /// The I/O error.
    pub source: std::io::Error,
}

/// A line of the journal that could not be read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The line number, from 1, counted from the start of the file.
    pub line: u64,
    /// The byte offset of the line's start.
    pub offset: u64,
    /// Why it was not read (the JSON error, or `torn line`).
    pub reason: String,
}

/// What [`Journal::read_chunk`] read.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The events, in file order.
    pub events: Vec<LogEvent>,
    /// The lines that could not be read, each reported once: copied to
    /// `<journal>.damaged` the first time it was read.
    pub damaged: Vec<Damage>,
    /// The byte offset after the chunk's last line: [`Journal::advance`] moves past it
    /// once the events are committed.
    pub end: u64,
    /// Lines read, blank ones included.
    lines: u64,
}

/// The journal file, open for appending and replay. Owned by the writer task.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Bytes in the file.
    len: u64,
    /// Bytes from the start whose lines were committed to the database by this process.
    committed: u64,
    /// Lines in the file not yet committed (as counted when they were written or found).
    held: u64,
    /// The line number of the line at `committed`, minus one.
    committed_lines: u64,
    /// Bytes from the start already read once: damage there was reported and kept.
    inspected: u64,
    /// Bytes from the start written by a previous process (the length at open), until
    /// they are all committed; 0 then.
    inherited: u64,
}

impl Journal {
    /// Opens the journal at `path`, creating it (and its directory) when missing. A journal
    /// left by a previous process is kept: its lines are what [`Journal::held`] counts and
    /// what replay reads first. A torn last line (no final `\n`) is ended with one so that
    /// it stays a line of its own (reported as damage at replay).
    ///
    /// Errors: [`JournalError`] (`create directory`, `open`, `read`, `append`).
    pub async fn open(path: &Path) -> Result<Journal, JournalError> {
        let error = |action| {
            let path = path.to_owned();
            move |source| JournalError {
                path,
                action,
                source,
            }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(error("create its directory"))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .await
            .map_err(error("open"))?;
        let mut contents = Vec::new();
        file.read_to_end(&mut contents)
            .await
            .map_err(error("read"))?;
        let held = contents
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .count() as u64;
        let mut len = contents.len() as u64;
        if contents.last().is_some_and(|b| *b != b'\n') {
            // The torn line is counted above already.
            file.write_all(b"\n").await.map_err(error("append"))?;
            file.sync_data().await.map_err(error("append"))?;
            len += 1;
        }
        Ok(Journal {
            path: path.to_owned(),
            file,
            len,
            committed: 0,
            held,
            committed_lines: 0,
            inspected: 0,
            inherited: len,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Events (lines) in the journal not yet committed to the database: 0 when events may
    /// go straight to the database.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// The file's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// Bytes of lines a previous process left (the file's length at [`Journal::open`])
    /// not committed yet: 0 once they are (or when there were none). While it is not 0,
    /// [`Journal::read_chunk`] reads only these lines.
    pub fn inherited(&self) -> u64 {
        self.inherited.saturating_sub(self.committed)
    }

    /// Appends `events`, one line each, after everything already in the journal, and
    /// fsyncs: they are durable when this returns. On error the file is cut back to its
    /// length before the call (best effort), so a partly written batch leaves no torn line.
    ///
    /// Errors: [`JournalError`] (`append`: disk full, I/O error).
    pub async fn append(&mut self, events: &[LogEvent]) -> Result<(), JournalError> {
        let mut text = Vec::with_capacity(events.len() * 256);
        for event in events {
            // LogEvent holds strings, numbers and UUIDs only: serializing cannot fail.
            serde_json::to_writer(&mut text, event).expect("a LogEvent serializes");
            text.push(b'\n');
        }
        let written = async {
            self.file.write_all(&text).await?;
            self.file.flush().await?;
            self.file.sync_data().await
        }
        .await;
        match written {
            Ok(()) => {
                self.len += text.len() as u64;
                self.held += events.len() as u64;
                Ok(())
            }
            Err(source) => {
                let _ = self.file.set_len(self.len).await;
                Err(self.error("append", source))
            }
        }
    }

    /// Reads up to `max` lines after those already committed, decoding each; while lines
    /// of a previous process are left ([`Journal::inherited`]), only those. Lines that
    /// do not decode are reported in [`Chunk::damaged`] (and copied to
    /// `<journal>.damaged`); they count towards `max`. An empty chunk with
    /// `end == bytes()` means every line was read.
    ///
    /// Errors: [`JournalError`] (`read`, or `keep damaged lines` when the side file cannot
    /// be written: the chunk is not taken then).
    pub async fn read_chunk(&mut self, max: usize) -> Result<Chunk, JournalError> {
        let mut reader = File::open(&self.path)
            .await
            .map_err(|e| self.error("read", e))?;
        reader
            .seek(SeekFrom::Start(self.committed))
            .await
            .map_err(|e| self.error("read", e))?;
        // A chunk ends at the previous process's last line, if any is left.
        let until = match self.inherited() {
            0 => self.len,
            _ => self.inherited.min(self.len),
        };
        // Large reads: each one is a trip to tokio's blocking pool.
        let mut reader = BufReader::with_capacity(
            READ_BUFFER,
            reader.take(until.saturating_sub(self.committed)),
        );
        let mut chunk = Chunk {
            end: self.committed,
            ..Chunk::default()
        };
        let mut kept = Vec::new();
        let mut line = Vec::new();
        let mut number = self.committed_lines;
        while chunk.events.len() + chunk.damaged.len() < max {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| self.error("read", e))?;
            if n == 0 {
                break;
            }
            let offset = chunk.end;
            chunk.end += n as u64;
            chunk.lines += 1;
            number += 1;
            let body = line.strip_suffix(b"\n");
            let decoded = match body {
                None => Err("torn line (no end of line)".to_owned()),
                Some([]) => continue,
                Some(body) => serde_json::from_slice::<LogEvent>(body).map_err(|e| e.to_string()),
            };
            match decoded {
                Ok(event) => chunk.events.push(event),
                Err(_) if offset < self.inspected => {}
                Err(reason) => {
                    kept.extend_from_slice(&line);
                    if !line.ends_with(b"\n") {
                        kept.push(b'\n');
                    }
                    chunk.damaged.push(Damage {
                        line: number,
                        offset,
                        reason,
                    });
                }
            }
        }
        if !kept.is_empty() {
            self.keep_damaged(&kept).await?;
        }
        self.inspected = self.inspected.max(chunk.end);
        Ok(chunk)
    }

    /// Marks the lines up to byte `end` (a [`Chunk::end`]) as committed: the next
    /// [`Journal::read_chunk`] starts after them. Empties the file ([`Journal::reset`])
    /// when that was the last line.
    ///
    /// Errors: as [`Journal::reset`].
    pub async fn advance(&mut self, chunk: &Chunk) -> Result<(), JournalError> {
        self.committed = chunk.end.min(self.len);
        self.committed_lines += chunk.lines;
        self.held = self.held.saturating_sub(chunk.lines);
        if self.committed == self.len {
            self.reset().await?;
        }
        Ok(())
    }

    /// Empties the file (truncate to 0 and fsync): call only when every line is committed.
    ///
    /// Errors: [`JournalError`] (`truncate`).
    async fn reset(&mut self) -> Result<(), JournalError> {
        let truncated = async {
            self.file.set_len(0).await?;
            self.file.sync_all().await
        }
        .await;
        truncated.map_err(|e| self.error("truncate", e))?;
        self.len = 0;
        self.committed = 0;
        self.committed_lines = 0;
        self.held = 0;
        self.inspected = 0;
        self.inherited = 0;
        Ok(())
    }

    /// Appends `lines` (damaged journal lines, as they were) to `<journal>.damaged`.
    async fn keep_damaged(&self, lines: &[u8]) -> Result<(), JournalError> {
        keep_aside(damaged_path(&self.path), lines, "keep damaged lines").await
    }

    /// Appends `event` as a journal line to `<journal>.quarantined` and fsyncs: an event
    /// the database refuses for its data, kept whole, out of the replay's way.
    ///
    /// Errors: [`JournalError`] (`quarantine an event`).
    pub async fn quarantine(&self, event: &LogEvent) -> Result<(), JournalError> {
        // LogEvent holds strings, numbers and UUIDs only: serializing cannot fail.
        let mut line = serde_json::to_vec(event).expect("a LogEvent serializes");
        line.push(b'\n');
        keep_aside(quarantined_path(&self.path), &line, "quarantine an event").await
    }

    fn error(&self, action: &'static str, source: std::io::Error) -> JournalError {
        JournalError {
            path: self.path.clone(),
            action,
            source,
        }
    }
}

/// Appends `lines` to the side file `path` (created when missing) and fsyncs.
async fn keep_aside(path: PathBuf, lines: &[u8], action: &'static str) -> Result<(), JournalError> {
    let kept = async {
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .await?;
        file.write_all(lines).await?;
        file.flush().await?;
        file.sync_data().await
    }
    .await;
    kept.map_err(|source| JournalError {
        path,
        action,
        source,
    })
}

/// Where the writer quarantines the events the database refuses for their data, beside
/// the journal at `path`: `<path>.quarantined`.
pub fn quarantined_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".quarantined");
    PathBuf::from(name)
}

/// Where damaged lines of the journal at `path` are kept: `<path>.damaged`.
pub fn damaged_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".damaged");
    PathBuf::from(name)
}
