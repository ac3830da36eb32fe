//! [`Claims`]: which bridge of a group runs a call, kept in Redis — the first step of several bridges sharing the
//! work (issue 14; not yet wired into the dispatcher).
//!
//! Before running a call a bridge claims it: one atomic script answers `Won` (set-if-absent with a lease),
//! `Held` by another bridge, or `Completed` with the result a bridge stored. The winner renews its lease while the
//! skill runs and stores the result before answering, which also releases the claim; when a lease runs out (its
//! bridge died), the next claim wins and the call runs elsewhere, once. Keys are namespaced by group
//! (`skillbridge:{group}:claim:{call}`, `..:result:{call}`) and every one expires, so nothing grows in Redis.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Script, Value};

/// How long a stored result stays, for bridges that see the call pending again (a lost answer, a reconnect).
pub(crate) const RESULT_TTL: Duration = Duration::from_secs(3600);

/// Takes the claim unless a result is stored or another bridge holds it; answers which.
const CLAIM: &str = r#"
local result = redis.call('GET', KEYS[2])
if result then return {'completed', result} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'won'} end
return {'held', redis.call('GET', KEYS[1]) or ''}
"#;

/// Extends the lease, only for the bridge that holds it.
const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#;

/// Stores the result (the first stored stays) and releases the claim if this bridge still holds it.
const COMPLETE: &str = r#"
local stored = redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if stored then return 1 end
return 0
"#;

/// What claiming a call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This bridge runs the call; it holds the lease until it completes or the lease runs out.
    Won,
    /// Another bridge runs it now.
    Held {
        /// That bridge's name.
        owner: String,
    },
    /// A bridge ran it; this is the result it stored (as JSON), to deliver instead of running it again.
    Completed(String),
}

/// One bridge's view of its group's claims.
#[derive(Clone)]
pub(crate) struct Claims {
    redis: ConnectionManager,
    prefix: String,
    owner: String,
    claim: Script,
    renew: Script,
    complete: Script,
}

impl Claims {
    /// Connects to `url` (`redis://HOST:PORT/DB`) as the bridge `owner` of `group`.
    pub(crate) async fn connect(url: &str, group: &str, owner: &str) -> redis::RedisResult<Self> {
        let redis = ConnectionManager::new(redis::Client::open(url)?).await?;
        Ok(Self {
            redis,
            prefix: format!("skillbridge:{group}"),
            owner: owner.to_owned(),
            claim: Script::new(CLAIM),
            renew: Script::new(RENEW),
            complete: Script::new(COMPLETE),
        })
    }

    fn keys(&self, call: &str) -> (String, String) {
        (
            format!("{}:claim:{call}", self.prefix),
            format!("{}:result:{call}", self.prefix),
        )
    }

    /// Claims `call` (its [`CallKey::encoded`](super::store::CallKey::encoded) form) for `lease`.
    pub(crate) async fn claim(&self, call: &str, lease: Duration) -> redis::RedisResult<Claim> {
        let (claim_key, result_key) = self.keys(call);
        let answer: Vec<Value> = self
            .claim
            .key(claim_key)
            .key(result_key)
            .arg(&self.owner)
            .arg(millis(lease))
            .invoke_async(&mut self.redis.clone())
            .await?;
        let text = |value: Option<&Value>| -> redis::RedisResult<String> {
            match value {
                Some(value) => redis::from_redis_value(value),
                None => Ok(String::new()),
            }
        };
        match text(answer.first())?.as_str() {
            "won" => Ok(Claim::Won),
            "completed" => Ok(Claim::Completed(text(answer.get(1))?)),
            _ => Ok(Claim::Held {
                owner: text(answer.get(1))?,
            }),
        }
    }

    /// Extends this bridge's lease on `call` to `lease` from now; `false` when it no longer holds it (the lease
    /// ran out and another bridge took the call over).
    pub(crate) async fn renew(&self, call: &str, lease: Duration) -> redis::RedisResult<bool> {
        let (claim_key, _) = self.keys(call);
        let renewed: i64 = self
            .renew
            .key(claim_key)
            .arg(&self.owner)
            .arg(millis(lease))
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(renewed == 1)
    }

    /// Stores `result` (JSON) as `call`'s, unless one is stored already, and releases this bridge's claim;
    /// `false` when another result was there first.
    pub(crate) async fn complete(&self, call: &str, result: &str) -> redis::RedisResult<bool> {
        let (claim_key, result_key) = self.keys(call);
        let stored: i64 = self
            .complete
            .key(claim_key)
            .key(result_key)
            .arg(&self.owner)
            .arg(result)
            .arg(millis(RESULT_TTL))
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(stored == 1)
    }
}

fn millis(duration: Duration) -> u64 {
    duration.as_millis().max(1) as u64
}

#[cfg(test)]
mod tests {
    use skillbridge_doubles::redis::RedisServer;

    use super::*;

    const LEASE: Duration = Duration::from_secs(30);

    async fn bridges(server: &RedisServer) -> (Claims, Claims) {
        let a = Claims::connect(&server.url(), "test", "bridge-a").await.unwrap();
        let b = Claims::connect(&server.url(), "test", "bridge-b").await.unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn a_call_is_won_by_one_bridge_and_its_result_is_delivered_by_the_others() {
        let server = RedisServer::start().await.unwrap();
        let (a, b) = bridges(&server).await;
        assert_eq!(a.claim("t/1", LEASE).await.unwrap(), Claim::Won);
        assert_eq!(
            b.claim("t/1", LEASE).await.unwrap(),
            Claim::Held {
                owner: "bridge-a".into()
            }
        );
        assert_eq!(
            a.claim("t/1", LEASE).await.unwrap(),
            Claim::Held {
                owner: "bridge-a".into()
            }
        );
        assert!(a.complete("t/1", r#"{"success":true}"#).await.unwrap());
        assert_eq!(
            b.claim("t/1", LEASE).await.unwrap(),
            Claim::Completed(r#"{"success":true}"#.into()),
            "run once: the others re-deliver the stored result"
        );
        assert!(
            !b.complete("t/1", r#"{"success":false}"#).await.unwrap(),
            "the first result stays"
        );
        // Another group's calls are its own.
        let other = Claims::connect(&server.url(), "other", "bridge-c").await.unwrap();
        assert_eq!(other.claim("t/1", LEASE).await.unwrap(), Claim::Won);
    }

    #[tokio::test]
    async fn a_lease_that_runs_out_lets_another_bridge_take_the_call_over() {
        let server = RedisServer::start().await.unwrap();
        let (a, b) = bridges(&server).await;
        // Redis keeps its own time, so this waits for a real (short) lease rather than a paused clock.
        assert_eq!(a.claim("t/2", Duration::from_millis(50)).await.unwrap(), Claim::Won);
        let takeover = async {
            loop {
                match b.claim("t/2", LEASE).await.unwrap() {
                    Claim::Won => return,
                    Claim::Held { owner } => assert_eq!(owner, "bridge-a"),
                    Claim::Completed(result) => panic!("nothing was completed: {result}"),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), takeover)
            .await
            .expect("taken over");
        assert!(
            !a.renew("t/2", LEASE).await.unwrap(),
            "the bridge that lost its lease cannot renew it"
        );
        assert!(b.renew("t/2", LEASE).await.unwrap());
    }

    #[tokio::test]
    async fn every_key_expires() {
        let server = RedisServer::start().await.unwrap();
        let (a, _) = bridges(&server).await;
        a.claim("t/3", LEASE).await.unwrap();
        a.complete("t/3", "{}").await.unwrap();
        a.claim("t/4", LEASE).await.unwrap();
        let mut redis = a.redis.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("skillbridge:test:*")
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(
            keys.len(),
            2,
            "the claim of t/3 was released; its result and t/4's claim remain: {keys:?}"
        );
        for key in keys {
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut redis).await.unwrap();
            assert!(
                ttl > 0 && ttl <= RESULT_TTL.as_millis() as i64,
                "{key} expires (PTTL {ttl})"
            );
        }
    }
}
