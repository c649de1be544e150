//! The cluster-wide connection counts, per project and per room. Each node keeps its own
//! count in memory ([`ProjectConnections`], authoritative for its share) and mirrors it
//! into a Redis hash per project, `{prefix}:conns:{project}` (per room:
//! `{prefix}:rconns:{project}/{room}`, one [`Counts`] each), field = node id. A node proves it
//! is alive with `{prefix}:node:{id}` (expires after [`NODE_TTL`], renewed every
//! [`HEARTBEAT`]); fields of nodes whose key expired are ignored and removed, so a
//! SIGKILLed node's connections stop counting within the TTL.
//!
//! Admission runs one Lua script (atomic in Redis): the live nodes' counts other than
//! ours plus ours (which already includes the new connection) must not pass the cap;
//! only then is our field written. Two nodes admitting at once are serialized by Redis,
//! so at most one of them takes the last slot. One task per node sends every write, and
//! always writes the count as it is when it sends, so writes never go out of order. If
//! Redis does not answer, the caller admits on its own count (fail open: Redis being
//! down must not take the product down) and the mirror is rewritten once it is back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::rooms::limits::ProjectConnections;

/// How long a node's liveness key lives without renewal.
const NODE_TTL: Duration = Duration::from_secs(10);
/// How often it is renewed (and the whole mirror rewritten).
const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long admission waits for Redis before falling back to the local count.
const ADMIT_TIMEOUT: Duration = Duration::from_secs(1);

const SCRIPT: &str = r"
local others = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local node = fields[i]
  if node ~= ARGV[1] then
    if redis.call('EXISTS', ARGV[4] .. node) == 1 then
      others = others + tonumber(fields[i + 1])
    else
      redis.call('HDEL', KEYS[1], node)
    end
  end
end
local mine = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
if cap >= 0 and others + mine > cap then
  return {0, others + mine}
end
if mine > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], mine)
  redis.call('PEXPIRE', KEYS[1], 86400000)
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return {1, others + mine}
";

/// The live nodes' counts other than ours, for each of `KEYS` (read-only).
const OTHERS: &str = r"
local out = {}
for k = 1, #KEYS do
  local others = 0
  local fields = redis.call('HGETALL', KEYS[k])
  for i = 1, #fields, 2 do
    local node = fields[i]
    if node ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. node) == 1 then
      others = others + tonumber(fields[i + 1])
    end
  end
  out[k] = others
end
return out
";

/// The answer to an admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Whether the connection fits under the cap.
    pub admitted: bool,
    /// The project's connections across live nodes, this one included.
    pub total: u32,
}

enum Op {
    Admit {
        project: Arc<str>,
        cap: u32,
        reply: oneshot::Sender<Option<Admission>>,
    },
    Changed(Arc<str>),
    Others {
        keys: Vec<Arc<str>>,
        reply: oneshot::Sender<Option<Vec<u32>>>,
    },
}

#[derive(Clone)]
pub(crate) struct Counts {
    tx: mpsc::UnboundedSender<Op>,
}

impl Counts {
    /// Mirrors `local` under `{prefix}:{namespace}:{id}`.
    pub(crate) fn start(
        client: redis::Client,
        prefix: String,
        namespace: &'static str,
        node: u64,
        local: Arc<ProjectConnections>,
        stop: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            client,
            conn: None,
            script: redis::Script::new(SCRIPT),
            others: redis::Script::new(OTHERS),
            node: format!("{node:016x}"),
            prefix,
            namespace,
            local,
            mirrored: HashMap::new(),
        };
        tokio::spawn(task.run(rx, stop));
        Self { tx }
    }

    pub(crate) async fn admit(&self, project: &Arc<str>, cap: u32) -> Option<Admission> {
        let (reply, answer) = oneshot::channel();
        let op = Op::Admit {
            project: project.clone(),
            cap,
            reply,
        };
        self.tx.send(op).ok()?;
        tokio::time::timeout(ADMIT_TIMEOUT, answer)
            .await
            .ok()?
            .ok()?
    }

    pub(crate) fn changed(&self, project: &Arc<str>) {
        let _ = self.tx.send(Op::Changed(project.clone()));
    }

    /// The connections of each of `keys` on the other live nodes; `None` if Redis
    /// did not answer.
    pub(crate) async fn others(&self, keys: Vec<Arc<str>>) -> Option<Vec<u32>> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Op::Others { keys, reply }).ok()?;
        tokio::time::timeout(ADMIT_TIMEOUT, answer)
            .await
            .ok()?
            .ok()?
    }
}

struct Task {
    client: redis::Client,
    conn: Option<redis::aio::MultiplexedConnection>,
    script: redis::Script,
    others: redis::Script,
    node: String,
    prefix: String,
    /// `conns` (projects) or `rconns` (rooms).
    namespace: &'static str,
    local: Arc<ProjectConnections>,
    /// What this node last wrote for each project.
    mirrored: HashMap<Arc<str>, u32>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Op>, stop: CancellationToken) {
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                op = rx.recv() => match op {
                    Some(Op::Admit { project, cap, reply }) => {
                        let answer = self.write(&project, Some(cap)).await;
                        let _ = reply.send(answer);
                    }
                    Some(Op::Changed(project)) => {
                        let _ = self.write(&project, None).await;
                    }
                    Some(Op::Others { keys, reply }) => {
                        let answer = self.read_others(&keys).await;
                        let _ = reply.send(answer);
                    }
                    None => break,
                },
                _ = heartbeat.tick() => self.heartbeat().await,
            }
        }
        // Leaving: this node's connections no longer count anywhere.
        if let Some(conn) = self.conn.as_mut() {
            let key = format!("{}:node:{}", self.prefix, self.node);
            let _ = tokio::time::timeout(
                ADMIT_TIMEOUT,
                redis::cmd("DEL").arg(key).query_async::<()>(conn),
            )
            .await;
        }
    }

    async fn connection(&mut self) -> Option<&mut redis::aio::MultiplexedConnection> {
        if self.conn.is_none() {
            let connected = tokio::time::timeout(
                ADMIT_TIMEOUT,
                self.client.get_multiplexed_async_connection(),
            )
            .await;
            match connected {
                Ok(Ok(conn)) => {
                    self.conn = Some(conn);
                    // Redis may have restarted empty: prove liveness and rewrite the
                    // mirror before anything relies on it.
                    self.mirrored.clear();
                    if !self.renew().await {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        self.conn.as_mut()
    }

    /// Runs the script for `project` with this node's current count: with a cap it
    /// admits or refuses; without one it only writes.
    async fn write(&mut self, project: &Arc<str>, cap: Option<u32>) -> Option<Admission> {
        let mine = self.local.count(project);
        let key = format!("{}:{}:{project}", self.prefix, self.namespace);
        let node_prefix = format!("{}:node:", self.prefix);
        let node = self.node.clone();
        let cap_arg = cap.map_or(-1, i64::from);
        let script = self.script.clone();
        let conn = self.connection().await?;
        let mut invocation = script.key(key);
        invocation.arg(node).arg(mine).arg(cap_arg).arg(node_prefix);
        let result =
            tokio::time::timeout(ADMIT_TIMEOUT, invocation.invoke_async::<(i64, i64)>(conn)).await;
        match result {
            Ok(Ok((admitted, total))) => {
                let admitted = admitted == 1;
                if admitted {
                    self.mirrored.insert(project.clone(), mine);
                }
                Some(Admission {
                    admitted,
                    total: u32::try_from(total.max(0)).unwrap_or(u32::MAX),
                })
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "cluster connection count failed");
                self.conn = None;
                None
            }
            Err(_) => {
                tracing::warn!("cluster connection count timed out");
                self.conn = None;
                None
            }
        }
    }

    async fn read_others(&mut self, keys: &[Arc<str>]) -> Option<Vec<u32>> {
        let node_prefix = format!("{}:node:", self.prefix);
        let node = self.node.clone();
        let script = self.others.clone();
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(format!("{}:{}:{key}", self.prefix, self.namespace));
        }
        invocation.arg(node).arg(node_prefix);
        let conn = self.connection().await?;
        match tokio::time::timeout(ADMIT_TIMEOUT, invocation.invoke_async::<Vec<i64>>(conn)).await {
            Ok(Ok(counts)) if counts.len() == keys.len() => Some(
                counts
                    .into_iter()
                    .map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX))
                    .collect(),
            ),
            Ok(Ok(_)) => None,
            Ok(Err(error)) => {
                tracing::warn!(%error, "reading cluster connection counts failed");
                self.conn = None;
                None
            }
            Err(_) => {
                tracing::warn!("reading cluster connection counts timed out");
                self.conn = None;
                None
            }
        }
    }

    /// Renews the liveness key and rewrites every count that differs from the mirror.
    async fn heartbeat(&mut self) {
        if self.conn.is_none() {
            // `connection` renews on connect.
            let _ = self.connection().await;
            return;
        }
        if !self.renew().await {
            return;
        }
        let current: HashMap<Arc<str>, u32> = self.local.projects().into_iter().collect();
        let mut stale: Vec<Arc<str>> = current
            .iter()
            .filter(|(p, n)| self.mirrored.get(*p) != Some(*n))
            .map(|(p, _)| p.clone())
            .collect();
        stale.extend(
            self.mirrored
                .keys()
                .filter(|p| !current.contains_key(*p))
                .cloned(),
        );
        for project in stale {
            if self.write(&project, None).await.is_none() {
                return;
            }
            if self.local.count(&project) == 0 {
                self.mirrored.remove(&project);
            }
        }
    }

    async fn renew(&mut self) -> bool {
        let key = format!("{}:node:{}", self.prefix, self.node);
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let mut set = redis::cmd("SET");
        set.arg(key)
            .arg(1)
            .arg("PX")
            .arg(NODE_TTL.as_millis() as u64);
        match tokio::time::timeout(ADMIT_TIMEOUT, set.query_async::<()>(conn)).await {
            Ok(Ok(())) => true,
            _ => {
                self.conn = None;
                false
            }
        }
    }
}
