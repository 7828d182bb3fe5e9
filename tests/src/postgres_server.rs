//! A private PostgreSQL server for one test: a fresh cluster in a temporary
//! folder, on a free loopback port, stopped when dropped. It uses Debian's
//! `postgresql` programs (`./dev test` installs them); as root, the server
//! runs as the `postgres` user, since PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{free_port, temp_folder};

pub struct PostgresServer {
    folder: PathBuf,
    /// The cluster's data folder, inside `folder`.
    data: String,
    bin: PathBuf,
    port: u16,
}

/// The newest installed PostgreSQL's program folder.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (./dev test installs Debian's postgresql)")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let version = path.file_name()?.to_str()?.parse().ok()?;
            Some((version, path.join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no initdb under /usr/lib/postgresql")
        .1
}

fn running_as_root() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(|| {
        let out = Command::new("id").arg("-u").output().expect("id -u");
        String::from_utf8_lossy(&out.stdout).trim() == "0"
    })
}

/// A PostgreSQL program, to run as `postgres` when we are root.
fn as_owner(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run_as_owner(program: &Path, args: &[&str]) {
    let out = as_owner(program)
        .args(args)
        .output()
        .expect("a PostgreSQL program");
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PostgresServer {
    pub fn start() -> PostgresServer {
        let bin = postgres_bin();
        let folder = temp_folder("postgres");
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&folder)
                .status()
                .unwrap();
            assert!(status.success(), "chown {}", folder.display());
        }
        let data = folder.join("data").to_str().unwrap().to_string();
        run_as_owner(
            &bin.join("initdb"),
            &[
                "-D",
                &data,
                "-U",
                "lens",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let port = free_port();
        let server = PostgresServer {
            folder,
            data,
            bin,
            port,
        };
        server.start_again();
        server
    }

    /// Starts the server (again, after `stop`: same data, same port).
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.folder.display()
        );
        let log = self.folder.join("server.log");
        run_as_owner(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.data,
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once (as a crash would), keeping its data.
    pub fn stop(&self) {
        run_as_owner(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data, "-m", "immediate", "-w", "stop"],
        );
    }

    /// The URL of the server's default database.
    pub fn url(&self) -> String {
        format!("postgres://lens@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id while it runs (the first line of its
    /// postmaster.pid).
    pub fn pid(&self) -> Option<u32> {
        let file = std::fs::read_to_string(Path::new(&self.data).join("postmaster.pid")).ok()?;
        file.lines().next()?.trim().parse().ok()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = as_owner(&self.bin.join("pg_ctl"))
            .args(["-D", &self.data, "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}
