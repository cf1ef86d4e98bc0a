//! The journalctl command line for a source: where it reads, where it starts, and the filters
//! journalctl applies itself (priority and matches; units and identifiers are `entry`'s).

use std::ffi::OsString;

use crate::config::{Journal, JournaldSourceSettings};

/// Arguments for journalctl, resuming after `cursor` when there is one.
pub fn arguments(settings: &JournaldSourceSettings, cursor: Option<&str>) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--output=json",
        "--all",
        "--follow",
        "--no-pager",
        "--quiet",
    ]
    .map(OsString::from)
    .to_vec();
    match &settings.journal {
        Journal::System => {}
        Journal::Directory(dir) => {
            let mut arg = OsString::from("--directory=");
            arg.push(dir);
            args.push(arg);
        }
        Journal::Files(files) => {
            args.extend(files.iter().map(|f| OsString::from(format!("--file={f}"))));
        }
    }
    match cursor {
        // Everything after the last entry delivered, whichever boot it was in.
        Some(cursor) => {
            args.push(format!("--after-cursor={cursor}").into());
            args.push("--no-tail".into());
        }
        None if settings.since_now => args.push("--lines=0".into()),
        None => {
            args.push("--no-tail".into());
            if settings.current_boot_only {
                args.push("--boot".into());
            }
        }
    }
    if let Some(priority) = settings.max_priority {
        args.push(format!("--priority=0..{priority}").into());
    }
    args.extend(settings.matches.iter().map(OsString::from));
    args
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    fn settings() -> JournaldSourceSettings {
        JournaldSourceSettings {
            journalctl_path: PathBuf::from("journalctl"),
            journal: Journal::Directory(PathBuf::from("/var/log/journal/remote")),
            since_now: false,
            current_boot_only: true,
            units: Vec::new(),
            exclude_units: Vec::new(),
            identifiers: Vec::new(),
            max_priority: Some(4),
            matches: vec!["_TRANSPORT=syslog".into()],
            max_entry_bytes: 1 << 20,
            checkpoint_interval: Duration::from_secs(1),
            restart_backoff: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(30),
            pipeline: None,
        }
    }

    fn joined(args: Vec<OsString>) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn first_start_reads_the_current_boot_and_a_cursor_resumes_after_it() {
        let s = settings();
        assert_eq!(
            joined(arguments(&s, None)),
            "--output=json --all --follow --no-pager --quiet \
             --directory=/var/log/journal/remote --no-tail --boot --priority=0..4 \
             _TRANSPORT=syslog"
        );
        let resumed = joined(arguments(&s, Some("s=1;i=9")));
        assert!(resumed.contains("--after-cursor=s=1;i=9 --no-tail --priority"));
        assert!(!resumed.contains("--boot"), "a cursor wins over the boot");
    }

    #[test]
    fn since_now_skips_what_is_there_and_files_are_named() {
        let mut s = settings();
        s.since_now = true;
        s.journal = Journal::Files(vec!["/j/*.journal".into()]);
        s.max_priority = None;
        s.matches.clear();
        assert_eq!(
            joined(arguments(&s, None)),
            "--output=json --all --follow --no-pager --quiet --file=/j/*.journal --lines=0"
        );
    }
}
