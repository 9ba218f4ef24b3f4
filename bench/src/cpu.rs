//! CPU time spent by a system under load, read from `/proc` (Linux): its process and all its
//! descendants, and for timix on Postgres also the server processes that do its work.

use std::sync::OnceLock;
use std::time::Duration;

/// What `/proc/<pid>/stat` says of one process.
#[derive(Debug, PartialEq)]
struct Stat {
    parent: u32,
    /// User and system time of the process itself, in clock ticks.
    own_ticks: u64,
    /// User and system time of its children that have exited and been waited for.
    reaped_children_ticks: u64,
}

/// Reads `pid (comm) state ppid … utime stime cutime cstime …`; the name may hold spaces and
/// parentheses, so the fields are counted from its last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    // After the name: state (0), ppid (1), … utime (11), stime (12), cutime (13), cstime (14).
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Stat {
        parent: u32::try_from(number(1)?).ok()?,
        own_ticks: number(11)? + number(12)?,
        reaped_children_ticks: number(13)? + number(14)?,
    })
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A process and all its living descendants.
fn process_tree(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_pids()
        .into_iter()
        .filter_map(|pid| Some((pid, stat(pid)?.parent)))
        .collect();
    let mut tree = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for &(pid, parent) in &parents {
            if !tree.contains(&pid) && tree.contains(&parent) {
                tree.push(pid);
                grew = true;
            }
        }
    }
    tree
}

/// Clock ticks a second (`getconf CLK_TCK`; 100 on Linux unless it says otherwise).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The Postgres server processes that work for `database`: its backends (and autovacuum
/// workers), the postmaster and the shared writers every commit goes through. Backends of other
/// databases on the same cluster are not counted.
fn serves(command_line: &str, database: &str) -> bool {
    const SHARED: [&str; 5] = [
        "checkpointer",
        "background writer",
        "walwriter",
        "autovacuum launcher",
        "logical replication launcher",
    ];
    let Some(title) = command_line.strip_prefix("postgres: ") else {
        // The postmaster keeps its command line (`…/bin/postgres -D …`).
        return true;
    };
    SHARED.iter().any(|s| title.trim_end().ends_with(s))
        || title.split_whitespace().any(|word| word == database)
}

fn postgres_ticks(database: &str) -> u64 {
    all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|bytes| {
                let line = String::from_utf8_lossy(&bytes).replace('\0', " ");
                serves(line.trim_end(), database)
            })
        })
        // Its own time only: the postmaster's reaped children are backends of every database.
        .filter_map(|pid| Some(stat(pid)?.own_ticks))
        .sum()
}

/// CPU time used so far by a system under load: read before and after, the difference is what
/// the load cost.
pub struct CpuMeter {
    root: u32,
    postgres_database: Option<String>,
}

/// CPU time used so far, split between the system's processes and a database server.
#[derive(Clone, Copy, Default)]
pub struct CpuUsed {
    pub system: Duration,
    pub database_server: Duration,
}

impl CpuUsed {
    pub fn since(self, earlier: CpuUsed) -> CpuUsed {
        CpuUsed {
            system: self.system.saturating_sub(earlier.system),
            database_server: self.database_server.saturating_sub(earlier.database_server),
        }
    }
}

impl CpuMeter {
    /// The process `root` and its descendants.
    pub fn process_tree(root: u32) -> Self {
        Self {
            root,
            postgres_database: None,
        }
    }

    /// Also the local Postgres server's processes that serve `database`.
    pub fn with_postgres_database(self, database: &str) -> Self {
        Self {
            postgres_database: Some(database.to_owned()),
            ..self
        }
    }

    pub fn counts_a_database_server(&self) -> bool {
        self.postgres_database.is_some()
    }

    pub fn used(&self) -> CpuUsed {
        let system: u64 = process_tree(self.root)
            .into_iter()
            .filter_map(stat)
            .map(|s| s.own_ticks + s.reaped_children_ticks)
            .sum();
        let server = self.postgres_database.as_deref().map_or(0, postgres_ticks);
        let seconds = |ticks: u64| Duration::from_secs_f64(ticks as f64 / ticks_per_second());
        CpuUsed {
            system: seconds(system),
            database_server: seconds(server),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_times_after_a_name_with_spaces_and_parentheses() {
        let line = "4242 (tokio (worker) 1) S 17 4242 17 0 -1 4194560 900 0 0 0 \
                    250 40 7 3 20 0 9 0 123 456 789";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                parent: 17,
                own_ticks: 290,
                reaped_children_ticks: 10,
            })
        );
    }

    #[test]
    fn a_process_tree_holds_the_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let tree = process_tree(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(tree[0], std::process::id());
        assert!(tree.contains(&child.id()), "{tree:?}");
    }

    #[test]
    fn work_shows_as_cpu_time() {
        let meter = CpuMeter::process_tree(std::process::id());
        let before = meter.used();
        let mut x = 0u64;
        // Spins until the kernel has counted at least one more tick.
        while meter.used().since(before).system.is_zero() {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        assert!(meter.used().since(before).database_server.is_zero());
    }

    #[test]
    fn counts_the_databases_backends_and_the_shared_writers_only() {
        let db = "timix_bench_01abc";
        for counted in [
            "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main",
            "postgres: 15/main: walwriter",
            "postgres: 15/main: checkpointer",
            "postgres: 15/main: background writer",
            "postgres: 15/main: timix_ci timix_bench_01abc 127.0.0.1(50000) idle",
            "postgres: 15/main: autovacuum worker timix_bench_01abc",
        ] {
            assert!(serves(counted, db), "{counted}");
        }
        for other in [
            "postgres: 15/main: timix_ci timix_test_9 127.0.0.1(50001) idle",
            "postgres: 15/main: timix_ci timix_bench_01abcd 127.0.0.1(50002) idle",
        ] {
            assert!(!serves(other, db), "{other}");
        }
    }
}
