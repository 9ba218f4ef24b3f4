//! The systems beside timix that run only the peers' workload: the bare axum forwarder (this
//! crate's `forwarder`) and Node-RED from `bench/node-red`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// A process of a peer, killed when dropped.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A started peer: its process and the URL its inbound webhook takes calls on.
pub struct Started {
    pub peer: Peer,
    pub inbound: String,
}

/// The bare forwarder beside this binary, forwarding to `receiver`.
pub fn start_forwarder(receiver: &str) -> anyhow::Result<Started> {
    let program = std::env::current_exe()?.with_file_name("forwarder");
    let mut child = Command::new(program)
        .arg(receiver)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let peer = Peer(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| anyhow::anyhow!("forwarder said {line:?}"))?;
    Ok(Started {
        inbound: format!("http://{address}/hook"),
        peer,
    })
}

/// Where Node-RED is installed (`npm ci --prefix bench/node-red`).
pub struct NodeRed {
    folder: PathBuf,
}

impl NodeRed {
    pub fn folder() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node-red")
    }

    /// Node-RED when installed, with the Node.js its package brings.
    pub fn installed() -> Option<Self> {
        let folder = Self::folder();
        let node_red = Self { folder };
        (node_red.node().exists() && node_red.red().exists()).then_some(node_red)
    }

    fn node(&self) -> PathBuf {
        self.folder.join("node_modules/node/bin/node")
    }

    fn red(&self) -> PathBuf {
        self.folder.join("node_modules/node-red/red.js")
    }

    /// Starts Node-RED on `port` with its user dir in `user_dir` and the flow of
    /// `bench/node-red/flows.json` posting to `receiver`.
    pub fn start(&self, user_dir: &Path, port: u16, receiver: &str) -> anyhow::Result<Started> {
        let child = Command::new(self.node())
            .arg(self.red())
            .arg("--settings")
            .arg(self.folder.join("settings.js"))
            .arg("--userDir")
            .arg(user_dir)
            .env("PORT", port.to_string())
            .env("TIMIX_BENCH_RECEIVER", receiver)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(Started {
            peer: Peer(child),
            inbound: format!("http://127.0.0.1:{port}/hook"),
        })
    }
}

/// Posts a call without a number to `inbound` until it answers 2xx (the flow is deployed); the
/// time since `since`.
pub async fn serving(
    http: &reqwest::Client,
    inbound: &str,
    since: Instant,
) -> anyhow::Result<Duration> {
    let deadline = since + Duration::from_secs(120);
    loop {
        if let Ok(r) = http.post(inbound).json(&json!({"warm": true})).send().await
            && r.status().is_success()
        {
            return Ok(since.elapsed());
        }
        anyhow::ensure!(Instant::now() < deadline, "{inbound} never answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use timix_bench::receiver;

    use super::*;

    /// The flow the suite runs: http in (POST /hook) → http request (POST to the receiver) →
    /// http response, the receiver's URL from the environment.
    #[test]
    fn the_flow_forwards_the_hook_to_the_receiver_and_then_answers() {
        let text = std::fs::read_to_string(NodeRed::folder().join("flows.json")).unwrap();
        let nodes: Vec<Value> = serde_json::from_str(&text).unwrap();
        let node = |kind: &str| {
            nodes
                .iter()
                .find(|n| n["type"] == kind)
                .unwrap_or_else(|| panic!("no {kind} node"))
        };
        let (inbound, request, response) =
            (node("http in"), node("http request"), node("http response"));
        assert_eq!(
            (&inbound["method"], &inbound["url"]),
            (&json!("post"), &json!("/hook"))
        );
        assert_eq!(inbound["wires"], json!([[request["id"]]]));
        assert_eq!(request["method"], "POST");
        assert_eq!(request["url"], "${TIMIX_BENCH_RECEIVER}");
        assert_eq!(request["wires"], json!([[response["id"]]]));
    }

    /// Needs Node-RED installed (`npm ci --prefix bench/node-red`): skipped loudly without it,
    /// except in CI, which installs it.
    #[tokio::test]
    async fn node_red_posts_each_call_to_the_receiver_before_answering() {
        let Some(node_red) = NodeRed::installed() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "Node-RED is not installed in bench/node-red (npm ci --prefix bench/node-red)"
            );
            eprintln!(
                "SKIPPED: Node-RED is not installed in bench/node-red (npm ci --prefix bench/node-red)"
            );
            return;
        };
        timix_connectors::outbound::install_crypto_provider();
        let (target, arrivals) = receiver().await.unwrap();
        let user_dir = tempdir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = node_red.start(&user_dir, port, &target).unwrap();
        let http = reqwest::Client::new();
        serving(&http, &started.inbound, Instant::now())
            .await
            .unwrap();
        let answer = http
            .post(&started.inbound)
            .json(&json!({"n": 41}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
        assert!(arrivals.lock().unwrap().contains_key(&41));
        drop(started);
        let _ = std::fs::remove_dir_all(user_dir);
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("timix-bench-nr-{}", ulid::Ulid::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
