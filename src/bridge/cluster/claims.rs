//! [`Claims`]: which bridge of a group runs a call, kept in Redis.
//!
//! Before running a call a bridge claims it: one atomic script answers `Won` (set-if-absent with a lease),
//! `Held` by another bridge, `Answered` already, or `Completed` with the result a bridge stored but did not
//! deliver. The winner renews its lease while the skill runs and while it answers; it stores the result before
//! answering ([`complete`](Claims::complete)), and once the answer is settled it releases the claim and, when the
//! answer went through, replaces the stored result with a small "answered" mark ([`settle`](Claims::settle)), so
//! that a bridge that sees the call late (from its queue, or a listing taken before the answer) neither runs it nor
//! answers it again. When a lease runs out (its bridge died) the next claim wins: the call runs elsewhere, once,
//! and the claim says whose it took over; a result stored but not delivered is delivered by the next bridge that
//! sees the call pending. Keys are namespaced by group (`skillbridge:{group}:claim:{call}`, `..:result:{call}`,
//! `..:last:{call}`) and every one expires, so nothing grows in Redis.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};

/// How long a stored result stays, for bridges that see the call pending again (a lost answer, a reconnect).
pub(crate) const RESULT_TTL: Duration = Duration::from_secs(3600);

/// What [`Claims::settle`] leaves in place of a delivered result: no JSON result reads like it.
const ANSWERED: &str = "answered";

/// Takes the claim unless another bridge holds it or a result is stored; answers which. A won claim answers the
/// bridge that won it last (its lease ran out without a result) and records this one.
const CLAIM: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder then return {'held', holder} end
local result = redis.call('GET', KEYS[2])
if result == ARGV[4] then return {'answered'} end
if result then return {'completed', result} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local previous = redis.call('GET', KEYS[3]) or ''
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[3])
  return {'won', previous}
end
return {'held', redis.call('GET', KEYS[1]) or ''}
"#;

/// Extends the lease, only for the bridge that holds it.
const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#;

/// Stores the result (the first stored stays); the claim is kept while the answer goes out.
const COMPLETE: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"#;

/// Releases the claim if this bridge holds it; when the answer went through, marks the call answered.
const SETTLE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if ARGV[2] == '1' then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) end
return 1
"#;

/// What claiming a call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This bridge runs the call; it holds the lease until it completes or the lease runs out.
    Won {
        /// The bridge that won it before, whose lease ran out without a result (it died): a takeover.
        previous: Option<String>,
    },
    /// Another bridge runs it (or answers it) now.
    Held {
        /// That bridge's name.
        owner: String,
    },
    /// A bridge ran it and its answer went through.
    Answered,
    /// A bridge ran it but did not deliver its answer; this is the result it stored (as JSON), to deliver instead
    /// of running it again.
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
    settle: Script,
}

impl Claims {
    /// Connects to `url` (`redis://HOST:PORT/DB`) as the bridge `owner` of `group`. Requests time out after
    /// `timeout`, and a lost connection is made again on the next request.
    pub(crate) async fn connect(url: &str, group: &str, owner: &str, timeout: Duration) -> redis::RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(1)
            .set_max_delay(timeout.as_millis() as u64);
        let redis = ConnectionManager::new_with_config(redis::Client::open(url)?, config).await?;
        Ok(Self {
            redis,
            prefix: format!("skillbridge:{group}"),
            owner: owner.to_owned(),
            claim: Script::new(CLAIM),
            renew: Script::new(RENEW),
            complete: Script::new(COMPLETE),
            settle: Script::new(SETTLE),
        })
    }

    fn keys(&self, call: &str) -> (String, String) {
        (
            format!("{}:claim:{call}", self.prefix),
            format!("{}:result:{call}", self.prefix),
        )
    }

    /// The key of the group's other records (`members`, `sessions`, `member:NAME`).
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// The connection, for the group's other records.
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.redis.clone()
    }

    /// Claims `call` (its [`CallKey::encoded`](super::store::CallKey::encoded) form) for `lease`.
    pub(crate) async fn claim(&self, call: &str, lease: Duration) -> redis::RedisResult<Claim> {
        let (claim_key, result_key) = self.keys(call);
        let answer: Vec<Value> = self
            .claim
            .key(claim_key)
            .key(result_key)
            .key(format!("{}:last:{call}", self.prefix))
            .arg(&self.owner)
            .arg(millis(lease))
            .arg(millis(RESULT_TTL))
            .arg(ANSWERED)
            .invoke_async(&mut self.redis.clone())
            .await?;
        let text = |value: Option<&Value>| -> redis::RedisResult<String> {
            match value {
                Some(value) => redis::from_redis_value(value),
                None => Ok(String::new()),
            }
        };
        match text(answer.first())?.as_str() {
            "won" => {
                let previous = text(answer.get(1))?;
                Ok(Claim::Won {
                    previous: (!previous.is_empty()).then_some(previous),
                })
            }
            "answered" => Ok(Claim::Answered),
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

    /// Stores `result` (JSON) as `call`'s, unless one is stored already (`false` then); the claim stays while
    /// the answer goes out.
    pub(crate) async fn complete(&self, call: &str, result: &str) -> redis::RedisResult<bool> {
        let (_, result_key) = self.keys(call);
        let stored: i64 = self
            .complete
            .key(result_key)
            .arg(result)
            .arg(millis(RESULT_TTL))
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(stored == 1)
    }

    /// The answer to `call` is settled: releases this bridge's claim, and when the answer went through
    /// (`answered`), keeps only a mark of that in place of the result.
    pub(crate) async fn settle(&self, call: &str, answered: bool) -> redis::RedisResult<()> {
        let (claim_key, result_key) = self.keys(call);
        let _: i64 = self
            .settle
            .key(claim_key)
            .key(result_key)
            .arg(&self.owner)
            .arg(if answered { "1" } else { "0" })
            .arg(ANSWERED)
            .arg(millis(RESULT_TTL))
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(())
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
    const TIMEOUT: Duration = Duration::from_secs(5);
    const WON: Claim = Claim::Won { previous: None };

    async fn bridges(server: &RedisServer) -> (Claims, Claims) {
        let a = Claims::connect(&server.url(), "test", "bridge-a", TIMEOUT)
            .await
            .unwrap();
        let b = Claims::connect(&server.url(), "test", "bridge-b", TIMEOUT)
            .await
            .unwrap();
        (a, b)
    }

    fn held_by_a() -> Claim {
        Claim::Held {
            owner: "bridge-a".into(),
        }
    }

    #[tokio::test]
    async fn a_call_is_won_by_one_bridge_held_while_it_runs_and_answers_then_answered() {
        let server = RedisServer::start().await.unwrap();
        let (a, b) = bridges(&server).await;
        assert_eq!(a.claim("t/1", LEASE).await.unwrap(), WON);
        assert_eq!(b.claim("t/1", LEASE).await.unwrap(), held_by_a());
        assert_eq!(a.claim("t/1", LEASE).await.unwrap(), held_by_a());
        assert!(a.complete("t/1", r#"{"success":true}"#).await.unwrap());
        assert_eq!(
            b.claim("t/1", LEASE).await.unwrap(),
            held_by_a(),
            "stored, and being answered: still a's"
        );
        a.settle("t/1", true).await.unwrap();
        assert_eq!(
            b.claim("t/1", LEASE).await.unwrap(),
            Claim::Answered,
            "a bridge that sees it late neither runs nor answers it"
        );
        // Another group's calls are its own.
        let other = Claims::connect(&server.url(), "other", "bridge-c", TIMEOUT)
            .await
            .unwrap();
        assert_eq!(other.claim("t/1", LEASE).await.unwrap(), WON);
    }

    #[tokio::test]
    async fn a_result_that_was_not_delivered_is_delivered_by_the_next_bridge_instead_of_run_again() {
        let server = RedisServer::start().await.unwrap();
        let (a, b) = bridges(&server).await;
        assert_eq!(a.claim("t/5", LEASE).await.unwrap(), WON);
        assert!(a.complete("t/5", r#"{"success":true}"#).await.unwrap());
        a.settle("t/5", false).await.unwrap();
        assert_eq!(
            b.claim("t/5", LEASE).await.unwrap(),
            Claim::Completed(r#"{"success":true}"#.into()),
            "run once: the stored result is delivered"
        );
        assert!(
            !b.complete("t/5", r#"{"success":false}"#).await.unwrap(),
            "the first result stays"
        );
        b.settle("t/5", true).await.unwrap();
        assert_eq!(a.claim("t/5", LEASE).await.unwrap(), Claim::Answered);
    }

    #[tokio::test]
    async fn a_lease_that_runs_out_lets_another_bridge_take_the_call_over() {
        let server = RedisServer::start().await.unwrap();
        let (a, b) = bridges(&server).await;
        // Redis keeps its own time, so this waits for a real (short) lease rather than a paused clock.
        assert_eq!(a.claim("t/2", Duration::from_millis(50)).await.unwrap(), WON);
        let takeover = async {
            loop {
                match b.claim("t/2", LEASE).await.unwrap() {
                    Claim::Won { previous } => {
                        assert_eq!(
                            previous.as_deref(),
                            Some("bridge-a"),
                            "a takeover names whose claim it took"
                        );
                        return;
                    }
                    Claim::Held { owner } => assert_eq!(owner, "bridge-a"),
                    other => panic!("nothing was completed: {other:?}"),
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
        a.settle("t/3", true).await.unwrap();
        a.claim("t/4", LEASE).await.unwrap();
        let mut redis = a.redis.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("skillbridge:test:*")
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(
            keys.len(),
            4,
            "the claim of t/3 was released; its answered mark, t/4's claim and who won each remain: {keys:?}"
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
