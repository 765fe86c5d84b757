//! A real S3-compatible server for tests: [`S3Server::start`] runs moto's standalone
//! server (`moto_server`, PyPI `moto[server]`) from `$HAYABUSA_S3_SERVER`, or else
//! from `.tools/venv/bin/moto_server` at the repository root (installed by
//! `scripts/setup-tools`), on a free local port, and creates a bucket. It speaks the
//! S3 REST API (signed requests, path-style addressing) but keeps objects in memory:
//! it tests the adapter's protocol, not a service's durability. A missing binary is
//! a test failure that says how to install it, never a skipped test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket every server starts with.
pub const BUCKET: &str = "hayabusa-test";

/// The moto_server binary to run; panics with instructions if there is none.
pub fn s3_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HAYABUSA_S3_SERVER") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "HAYABUSA_S3_SERVER points at {}, which is not a file",
            path.display()
        );
        return path;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/moto_server");
    assert!(
        path.is_file(),
        "moto_server is not installed at {}: run scripts/setup-tools (or set \
         HAYABUSA_S3_SERVER to a moto_server) to run the S3 tests",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A moto_server process of a test, killed when dropped.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl S3Server {
    /// Starts a server and creates [`BUCKET`] in it.
    pub fn start() -> S3Server {
        let binary = s3_server_binary();
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.reopen().expect("the log file")))
            .stderr(Stdio::from(log.reopen().expect("the log file")))
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        let mut server = S3Server { child, port, log };
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait().expect("moto_server's status") {
                panic!(
                    "moto_server exited ({status}) while starting:\n{}",
                    server.log()
                );
            }
            if let Ok(status) = server.raw_request("PUT", &format!("/{BUCKET}")) {
                assert!(
                    status == 200,
                    "creating the bucket: HTTP {status}:\n{}",
                    server.log()
                );
                return server;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not answer within a minute:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a bodiless unsigned request (moto does not check signatures); returns the
    /// status code.
    fn raw_request(&self, method: &str, path: &str) -> std::io::Result<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {answer:?}")))
    }

    /// The server's endpoint URL (`AWS_ENDPOINT_URL`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a client needs to reach it: endpoint, plain HTTP, region and
    /// (any) credentials, as `AWS_*` variables.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "hayabusa".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "hayabusa-secret".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// A client of the bucket (for tests to look at what the server under test
    /// stored), under `prefix`.
    pub async fn blob_store(&self, prefix: &str) -> crate::S3BlobStore {
        let location =
            crate::S3Location::parse(&format!("s3://{BUCKET}/{prefix}")).expect("a valid location");
        crate::S3BlobStore::connect_with(&location, &self.env())
            .await
            .expect("a client of the test server")
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
