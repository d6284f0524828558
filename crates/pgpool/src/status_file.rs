//! `pgpool_status`: the node states (up/down/unused, one line per node) kept in work_dir (logdir before Pgpool-II 4.7)
//! across restarts, so a node that failed stays detached until it is attached again.
//! `pgpool -D` ignores it.

use std::path::{Path, PathBuf};

use shmem::BackendStatus;

pub fn path(work_dir: &str) -> PathBuf {
    Path::new(if work_dir.is_empty() {
        "/tmp"
    } else {
        work_dir
    })
    .join("pgpool_status")
}

/// Reads the saved states; `None` when there is no usable file.
pub fn read(path: &Path) -> Option<Vec<BackendStatus>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let s = match line.trim() {
            "up" => BackendStatus::Up,
            "down" => BackendStatus::Down,
            "unused" => BackendStatus::Unused,
            other => {
                log::warn!(
                    "{}:{}: ignoring unknown node status \"{other}\"",
                    path.display(),
                    i + 1
                );
                return None;
            }
        };
        out.push(s);
    }
    Some(out)
}

/// Writes the states atomically (temp file + rename).
pub fn write(path: &Path, states: &[BackendStatus]) -> std::io::Result<()> {
    let mut text = String::new();
    for s in states {
        text.push_str(match s {
            BackendStatus::Down => "down",
            BackendStatus::Unused => "unused",
            _ => "up",
        });
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("pgpool-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("pgpool_status");
        write(
            &p,
            &[
                BackendStatus::Up,
                BackendStatus::Down,
                BackendStatus::ConnectWait,
            ],
        )
        .unwrap();
        assert_eq!(
            read(&p).unwrap(),
            vec![BackendStatus::Up, BackendStatus::Down, BackendStatus::Up]
        );
        std::fs::write(&p, "up\nbogus\n").unwrap();
        assert!(read(&p).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
