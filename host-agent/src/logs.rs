//! Container logs.
//!
//! containerd's shim starts a logger per container (`binary://` stdio:
//! `berth log-driver`), handing it the container's stdout and stderr as
//! pipes. The logger writes one JSON line per line of output, with its time
//! and stream, to `<state-dir>/logs/<task>/<container>.log`, and rotates the
//! file by size. The shim owns the logger, so logging goes on while the
//! agent restarts, and the agent only reads the files
//! ([`read`], [`follow`]) to serve `GET .../tasks/{task}/logs`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A line longer than this is cut into several.
const MAX_LINE: usize = 16 * 1024;

/// One line of a container's output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogLine {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub stream: String,
    pub log: String,
}

/// How the logger is told where to write: `max_bytes:keep:path`, the value
/// of the single query parameter of the `binary://` URI (the shim passes
/// query parameters as arguments in no fixed order, so there is only one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverSpec {
    pub max_bytes: u64,
    pub keep: u32,
    pub path: PathBuf,
}

impl DriverSpec {
    pub fn encode(&self) -> String {
        format!("{}:{}:{}", self.max_bytes, self.keep, self.path.display())
    }

    pub fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, ':');
        let max_bytes = parts.next()?.parse().ok()?;
        let keep = parts.next()?.parse().ok()?;
        let path = PathBuf::from(parts.next()?);
        path.is_absolute().then_some(DriverSpec { max_bytes, keep, path })
    }

    /// The `binary://` URI for containerd's Task.Create, with `program` as the logger.
    pub fn uri(&self, program: &Path) -> String {
        let value: String = self
            .encode()
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("binary://{}?log-driver={value}", program.display())
    }
}

/// The log file of one container.
pub fn container_log(logs_dir: &Path, task: &berth_api::TaskId, container: &str) -> PathBuf {
    logs_dir.join(task.to_string()).join(format!("{container}.log"))
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

/// The logger process: reads the container's stdout and stderr (fds 3 and
/// 4), signals readiness on fd 5, and writes until both pipes close.
pub fn run_driver(spec: &DriverSpec) -> std::io::Result<()> {
    let stdout = std::fs::File::open("/proc/self/fd/3")?;
    let stderr = std::fs::File::open("/proc/self/fd/4")?;
    if let Some(dir) = spec.path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // The shim waits for a byte (or EOF) on fd 5 before it starts the container.
    if let Ok(mut ready) = std::fs::OpenOptions::new().write(true).open("/proc/self/fd/5") {
        let _ = ready.write_all(b"1");
    }
    let (tx, rx) = std::sync::mpsc::channel::<LogLine>();
    let readers: Vec<_> = [(stdout, "stdout"), (stderr, "stderr")]
        .into_iter()
        .map(|(file, stream)| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(file);
                loop {
                    let mut buf = Vec::new();
                    match (&mut reader).take(MAX_LINE as u64).read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = LogLine {
                                time: OffsetDateTime::now_utc(),
                                stream: stream.to_owned(),
                                log: String::from_utf8_lossy(&buf).into_owned(),
                            };
                            if tx.send(line).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let mut writer = Writer::open(spec)?;
    for line in rx {
        writer.write(&line)?;
    }
    for r in readers {
        let _ = r.join();
    }
    Ok(())
}

struct Writer<'a> {
    spec: &'a DriverSpec,
    file: std::fs::File,
    size: u64,
}

impl<'a> Writer<'a> {
    fn open(spec: &'a DriverSpec) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&spec.path)?;
        let size = file.metadata()?.len();
        Ok(Writer { spec, file, size })
    }

    fn write(&mut self, line: &LogLine) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        if self.size > 0 && self.size + bytes.len() as u64 > self.spec.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(&bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// The logger owns its file, so it rotates by renaming (`x.log` -> `x.log.1` -> ...).
    fn rotate(&mut self) -> std::io::Result<()> {
        let path = &self.spec.path;
        if self.spec.keep == 0 {
            self.file.set_len(0)?;
        } else {
            let _ = std::fs::remove_file(rotated(path, self.spec.keep));
            for n in (1..self.spec.keep).rev() {
                let _ = std::fs::rename(rotated(path, n), rotated(path, n + 1));
            }
            std::fs::rename(path, rotated(path, 1))?;
            self.file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        }
        self.size = 0;
        Ok(())
    }
}

/// What to read.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    pub tail: Option<usize>,
    pub since: Option<OffsetDateTime>,
}

fn parse_file(path: &Path, since: Option<OffsetDateTime>, out: &mut Vec<LogLine>) {
    let Ok(file) = std::fs::File::open(path) else { return };
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        if let Ok(l) = serde_json::from_str::<LogLine>(&line)
            && since.is_none_or(|s| l.time >= s)
        {
            out.push(l);
        }
    }
}

/// A container's lines so far, oldest first, from the rotated files on.
pub fn read(path: &Path, query: &LogQuery) -> Vec<LogLine> {
    let mut out = Vec::new();
    let mut n = 1;
    while rotated(path, n).exists() {
        n += 1;
    }
    for k in (1..n).rev() {
        parse_file(&rotated(path, k), query.since, &mut out);
    }
    parse_file(path, query.since, &mut out);
    if let Some(t) = query.tail {
        let skip = out.len().saturating_sub(t);
        out.drain(..skip);
    }
    out
}

/// Follows a log file from its end: returns the lines written since the
/// last call, switching to the new file when the logger rotates.
pub struct Follower {
    path: PathBuf,
    offset: u64,
    inode: u64,
    pending: Vec<u8>,
}

impl Follower {
    pub fn from_end(path: &Path) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path).ok();
        Follower {
            path: path.to_owned(),
            offset: meta.as_ref().map_or(0, |m| m.len()),
            inode: meta.map_or(0, |m| m.ino()),
            pending: Vec::new(),
        }
    }

    pub fn poll(&mut self) -> Vec<LogLine> {
        use std::io::Seek as _;
        use std::os::unix::fs::MetadataExt as _;
        let Ok(meta) = std::fs::metadata(&self.path) else { return Vec::new() };
        let mut out = Vec::new();
        if meta.ino() != self.inode {
            // Rotated: finish the old file (now `.1`), then start the new one.
            let old = rotated(&self.path, 1);
            if let Ok(m) = std::fs::metadata(&old)
                && m.ino() == self.inode
            {
                self.read_from(&old, &mut out);
            }
            self.inode = meta.ino();
            self.offset = 0;
            self.pending.clear();
        }
        let Ok(mut file) = std::fs::File::open(&self.path) else { return out };
        if file.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return out;
        }
        let mut buf = Vec::new();
        if file.read_to_end(&mut buf).is_ok() {
            self.offset += buf.len() as u64;
            self.take_lines(buf, &mut out);
        }
        out
    }

    fn read_from(&mut self, path: &Path, out: &mut Vec<LogLine>) {
        use std::io::Seek as _;
        let Ok(mut file) = std::fs::File::open(path) else { return };
        if file.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if file.read_to_end(&mut buf).is_ok() {
            self.take_lines(buf, out);
        }
    }

    fn take_lines(&mut self, buf: Vec<u8>, out: &mut Vec<LogLine>) {
        self.pending.extend_from_slice(&buf);
        while let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=i).collect();
            if let Ok(l) = serde_json::from_slice::<LogLine>(&line) {
                out.push(l);
            }
        }
    }
}

/// How often a follower looks for new lines.
pub const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// Removes the logs of tasks that ended longer ago than `retention`
/// (judged by the last write), except those still running.
pub fn purge(logs_dir: &Path, retention: Duration, running: &std::collections::HashSet<berth_api::TaskId>) {
    let Ok(entries) = std::fs::read_dir(logs_dir) else { return };
    let now = std::time::SystemTime::now();
    for entry in entries.filter_map(Result::ok) {
        let Ok(task) = entry.file_name().to_string_lossy().parse::<berth_api::TaskId>() else { continue };
        if running.contains(&task) {
            continue;
        }
        let newest = std::fs::read_dir(entry.path())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|f| f.metadata().ok()?.modified().ok())
            .max();
        if newest.is_none_or(|m| now.duration_since(m).unwrap_or_default() > retention) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_specs_round_trip_and_escape() {
        let spec = DriverSpec { max_bytes: 1024, keep: 2, path: PathBuf::from("/var/lib/berth/logs/t/web app.log") };
        assert_eq!(DriverSpec::decode(&spec.encode()), Some(spec.clone()));
        let uri = spec.uri(Path::new("/usr/bin/berth"));
        assert_eq!(uri, "binary:///usr/bin/berth?log-driver=1024%3A2%3A/var/lib/berth/logs/t/web%20app.log");
        assert_eq!(DriverSpec::decode("1:2:relative"), None);
    }

    #[test]
    fn rotation_keeps_every_line_readable_in_order() {
        let dir = tempfile_dir();
        // About five lines per file, four files: within what is kept.
        let spec = DriverSpec { max_bytes: 400, keep: 5, path: dir.join("c.log") };
        let mut w = Writer::open(&spec).expect("open");
        let mut follower = Follower::from_end(&spec.path);
        for i in 0..20 {
            let line = LogLine { time: OffsetDateTime::now_utc(), stream: "stdout".into(), log: format!("line {i}\n") };
            w.write(&line).expect("write");
        }
        assert!(rotated(&spec.path, 1).exists(), "the file rotated");
        let all = read(&spec.path, &LogQuery::default());
        assert_eq!(all.len(), 20);
        assert_eq!(all[0].log, "line 0\n");
        assert_eq!(all[19].log, "line 19\n");
        let tail = read(&spec.path, &LogQuery { tail: Some(3), since: None });
        assert_eq!(tail.iter().map(|l| l.log.as_str()).collect::<Vec<_>>(), ["line 17\n", "line 18\n", "line 19\n"]);
        // The follower saw the lines of the file it started on (older rotations are the reader's).
        let followed = follower.poll();
        assert!(followed.last().is_some_and(|l| l.log == "line 19\n"), "{followed:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-logs-test-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }
}
