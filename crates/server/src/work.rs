//! Carrying out the core's requests: password hashing and checking (Argon2id, on the blocking
//! pool, bounded) and store reads and writes (on the store's thread). Each answer goes back to
//! the hub as `(RequestId, Response)`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::rand_core::RngCore;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chinwag_core::scram::{ScramCredentials, SCRAM_ITERATIONS, SCRAM_SALT_LEN};
use chinwag_core::{CertAnswer, CertRequest, Failure, MarkerSet, Request, RequestId, Response, ScramLookup};
use chinwag_store::{NewAccount, StoreError};
use tokio::sync::{mpsc, Semaphore};

use crate::metrics::Metrics;
use crate::storage::{from_stored, to_query, Storage};

/// Argon2id at OWASP's recommended minimum: 19 MiB of memory, 2 passes, 1 lane.
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_PASSES: u32 = 2;
const ARGON2_LANES: u32 = 1;
/// What a password is checked against when its account does not exist, so that a miss costs
/// what a hit costs: a hash with today's parameters (a test keeps them in step). A constant,
/// not one computed at start-up: computing it took 19 MiB that the allocator kept for a while,
/// so a server that had just started looked 15 MiB bigger than it was.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$b0z+glcrgPBE8iNk56PwLg$RG7S2OENFpKRjKhsEsMJyTRlVnFS1lKTRYxJaiJCReo";
/// Hashes computed at once. Each takes 19 MiB and a core for tens of milliseconds; a flood of
/// logins waits here instead of exhausting memory.
const CONCURRENT_HASHES: usize = 4;

fn argon2() -> Argon2<'static> {
    // The parameters are constants known to be valid.
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) for `password`, with a fresh
/// random salt.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Checks `password` against a PHC string (its own parameters, so old hashes keep working).
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// Random bytes in a SCRAM server nonce (base64: 24 printable characters, never ',').
const SCRAM_NONCE_BYTES: usize = 18;

/// Fresh SCRAM-SHA-256 credentials for `password` (a random salt, [`SCRAM_ITERATIONS`]), as
/// stored (RFC 5803 text). PBKDF2: run it on the blocking pool.
pub fn derive_scram(password: &str) -> String {
    let mut salt = [0u8; SCRAM_SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    ScramCredentials::derive(password, &salt, SCRAM_ITERATIONS).to_stored()
}

/// The server's half of a SCRAM nonce.
fn scram_nonce() -> String {
    use base64::Engine;
    let mut bytes = [0u8; SCRAM_NONCE_BYTES];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Shared by every request: where to run, and where answers go.
#[derive(Clone)]
pub(crate) struct Worker {
    pub storage: Storage,
    pub answers: mpsc::UnboundedSender<(RequestId, Response)>,
    /// Re-reads the configuration for REHASH.
    pub reloader: Arc<crate::reload::Reloader>,
    hashing: Arc<Semaphore>,
    /// Counts the password checks run (`password_checks`).
    metrics: Arc<Metrics>,
}

impl Worker {
    pub fn new(
        storage: Storage,
        answers: mpsc::UnboundedSender<(RequestId, Response)>,
        reloader: Arc<crate::reload::Reloader>,
        metrics: Arc<Metrics>,
    ) -> Worker {
        Worker { storage, answers, reloader, hashing: Arc::new(Semaphore::new(CONCURRENT_HASHES)), metrics }
    }

    /// Starts a request; its answer arrives on `answers` later.
    pub fn start(&self, id: RequestId, request: Request) {
        let this = self.clone();
        tokio::spawn(async move {
            let response = this.run(request).await;
            let _ = this.answers.send((id, response));
        });
    }

    async fn run(&self, request: Request) -> Response {
        match request {
            // A cluster node's claims go to the bus (`cluster::claim`); one that reaches the
            // worker could not be handed to it.
            Request::Claim(_) => Response::Claim(chinwag_core::ClaimAnswer::Unavailable),
            Request::Register { account, email, password } => {
                Response::Account(self.register(account, email, password).await)
            }
            Request::CheckPassword { account, password } => {
                Response::Account(self.check(account, password, true).await)
            }
            Request::SetPassword { account, password } => Response::Done(self.set_password(account, password).await),
            Request::DropAccount { account, password } => Response::Done(self.drop_account(account, password).await),
            Request::History { conversation, query, limit, events } => {
                let query = to_query(query);
                let r = self
                    .store(move |s| match events {
                        true => s.history_with_events(&conversation, &query, limit),
                        false => s.history(&conversation, &query, limit),
                    })
                    .await;
                Response::Messages(r.map(|v| v.into_iter().map(from_stored).collect()))
            }
            Request::HistoryTargets { viewer, rooms, from_ms, to_ms, limit } => {
                let r = self.store(move |s| s.history_targets(viewer.as_deref(), &rooms, from_ms, to_ms, limit)).await;
                Response::Targets(r.map(|v| v.into_iter().map(|t| (t.name, t.latest_ms)).collect()))
            }
            Request::VerifyPassword { phc, password } => {
                let phc = phc.unwrap_or_else(|| DUMMY_HASH.to_owned());
                Response::Done(match self.verify(phc, password).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(Failure::BadPassword),
                    Err(e) => Err(e),
                })
            }
            Request::Reload => Response::Done(
                self.reloader.reload("REHASH").await.map(|_| ()).map_err(|e| Failure::Unavailable(format!("{e:#}"))),
            ),
            Request::Offline { account, limit } => {
                let r = self.store(move |s| s.offline(&account, limit)).await;
                Response::Messages(r.map(|v| v.into_iter().map(from_stored).collect()))
            }
            Request::Keys(request) => Response::Keys(self.keys(request).await),
            Request::ScramCredentials { account } => Response::Scram(self.scram(account).await),
            Request::CertOwner { fingerprint } => Response::Account(
                self.store(move |s| s.cert_owner(&fingerprint)).await.and_then(|o| o.ok_or(Failure::NoSuchAccount)),
            ),
            Request::Certs(request) => Response::Certs(self.certs(request).await),
            Request::Message { msgid } => {
                Response::Message(self.store(move |s| s.message(&msgid)).await.map(|m| m.map(from_stored)))
            }
            Request::Redact { msgid } => Response::Redacted(self.store(move |s| s.redact(&msgid)).await),
            Request::ReadMarkers { account } => Response::Markers(
                self.store(move |s| s.read_markers(&account))
                    .await
                    .map(|list| list.into_iter().map(|m| (m.target, m.time_ms)).collect()),
            ),
            Request::SetReadMarker { account, target, time_ms, max } => Response::Marker(
                self.store(move |s| s.set_read_marker(&account, &target, time_ms, max))
                    .await
                    .map(|set| set.map(|m| MarkerSet { time_ms: m.time_ms, evicted: m.evicted })),
            ),
        }
    }

    /// Runs a store operation, mapping its errors to what a user is told.
    pub(crate) async fn store<R, F>(&self, f: F) -> Result<R, Failure>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn chinwag_store::Store) -> Result<R, StoreError> + Send + 'static,
    {
        let rx = self.storage.call(f).map_err(|_| busy())?;
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(StoreError::AccountExists(_))) => Err(Failure::AccountExists),
            Ok(Err(StoreError::UnknownMsgId(id))) => Err(Failure::Unavailable(format!("No message with id {id} here"))),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "store operation failed");
                Err(Failure::Unavailable("The server could not reach its storage; try again later".into()))
            }
            Err(_) => Err(busy()),
        }
    }

    /// One password check (Argon2id), counted in `password_checks` once it runs.
    async fn verify(&self, phc: String, password: String) -> Result<bool, Failure> {
        let metrics = self.metrics.clone();
        self.hashing(move || {
            metrics.password_checks.fetch_add(1, Relaxed);
            verify_password(&phc, &password)
        })
        .await
    }

    /// Runs a hash computation on the blocking pool, a few at a time.
    async fn hashing<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R, Failure> {
        let _permit = self.hashing.acquire().await.map_err(|_| busy())?;
        tokio::task::spawn_blocking(f).await.map_err(|_| busy())
    }

    async fn register(&self, account: String, email: Option<String>, password: String) -> Result<String, Failure> {
        let (hash, scram) = self.hash_and_derive(password).await?;
        let now_ms = crate::hub::now().wall_ms;
        let record =
            NewAccount { name: account.clone(), password_hash: hash, scram: Some(scram), email, created_ms: now_ms };
        self.store(move |s| s.create_account(&record)).await?;
        Ok(account)
    }

    /// Ok(canonical name) if the password is right. Costs one Argon2 check either way. With
    /// `upgrade` (a login), an account without SCRAM credentials gets them.
    async fn check(&self, account: String, password: String, upgrade: bool) -> Result<String, Failure> {
        let record = self.store(move |s| s.account(&account)).await?;
        let (name, phc, has_scram) = match record {
            Some(r) => (Some(r.name), r.password_hash, r.scram.is_some()),
            None => (None, DUMMY_HASH.to_owned(), true),
        };
        let ok = self.verify(phc.clone(), password.clone()).await?;
        match name {
            Some(name) if ok => {
                if upgrade && !has_scram {
                    self.upgrade_scram(&name, phc, password).await;
                }
                Ok(name)
            }
            _ => Err(Failure::BadPassword),
        }
    }

    /// An account registered before SCRAM logged in with its password: derive its SCRAM
    /// credentials now, the one moment the password is at hand. Stored only if the password is
    /// still the account's; a failure here fails no login (the next one tries again).
    async fn upgrade_scram(&self, name: &str, phc: String, password: String) {
        let scram = match self.hashing(move || derive_scram(&password)).await {
            Ok(scram) => scram,
            Err(_) => return,
        };
        let name = name.to_owned();
        match self.store(move |s| s.set_scram(&name, &phc, &scram)).await {
            Ok(true) => tracing::info!("SCRAM credentials derived at a password login"),
            Ok(false) => {}
            Err(f) => tracing::warn!(failure = ?f, "could not store SCRAM credentials derived at a login"),
        }
    }

    /// The Argon2id hash and the SCRAM credentials of a new password, on the blocking pool.
    async fn hash_and_derive(&self, password: String) -> Result<(String, String), Failure> {
        let (hash, scram) = self.hashing(move || (hash_password(&password), derive_scram(&password))).await?;
        Ok((hash.map_err(|_| busy())?, scram))
    }

    /// An account's SCRAM credentials and a fresh server nonce. The credentials are parsed here,
    /// so that a record the core cannot use reads as "none yet".
    async fn scram(&self, account: String) -> Result<ScramLookup, Failure> {
        let record = self.store(move |s| s.account(&account)).await?.ok_or(Failure::NoSuchAccount)?;
        let credentials = record.scram.as_deref().and_then(ScramCredentials::from_stored);
        if record.scram.is_some() && credentials.is_none() {
            tracing::warn!(account = %record.name, "stored SCRAM credentials do not parse; ignored");
        }
        Ok(ScramLookup { account: record.name, credentials, server_nonce: scram_nonce() })
    }

    async fn certs(&self, request: CertRequest) -> Result<CertAnswer, Failure> {
        use chinwag_store::CertAdded;
        match request {
            CertRequest::Add { account, fingerprint, max } => {
                match self.store(move |s| s.add_cert(&account, &fingerprint, max)).await? {
                    CertAdded::Added => Ok(CertAnswer::Added),
                    CertAdded::AlreadyThere => Ok(CertAnswer::AlreadyThere),
                    CertAdded::Taken => Ok(CertAnswer::Taken),
                    CertAdded::Full => Ok(CertAnswer::Full),
                    CertAdded::NoAccount => Err(Failure::NoSuchAccount),
                }
            }
            CertRequest::Remove { account, fingerprint } => {
                self.store(move |s| s.remove_cert(&account, &fingerprint)).await.map(CertAnswer::Removed)
            }
            CertRequest::List { account } => self.store(move |s| s.certs(&account)).await.map(CertAnswer::List),
        }
    }

    async fn set_password(&self, account: String, password: String) -> Result<(), Failure> {
        let (hash, scram) = self.hash_and_derive(password).await?;
        match self.store(move |s| s.set_password(&account, &hash, Some(&scram))).await? {
            true => Ok(()),
            false => Err(Failure::NoSuchAccount),
        }
    }

    async fn drop_account(&self, account: String, password: String) -> Result<(), Failure> {
        let name = self.check(account, password, false).await?;
        match self.store(move |s| s.drop_account(&name)).await? {
            true => Ok(()),
            false => Err(Failure::NoSuchAccount),
        }
    }
}

fn busy() -> Failure {
    Failure::Unavailable("The server is busy; try again in a moment".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_argon2id_phc_strings_that_verify() {
        let a = hash_password("correct horse").expect("hash");
        let b = hash_password("correct horse").expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify_password(&a, "correct horse"));
        assert!(!verify_password(&a, "Correct horse"));
        assert!(!verify_password("not a phc string", "correct horse"));
    }

    /// A miss must cost what a hit costs: the stand-in hash has exactly the parameters new
    /// hashes get, and is a real hash (of a password nobody knows).
    #[test]
    fn the_stand_in_hash_has_todays_parameters() {
        let real = hash_password("anything").expect("hash");
        let params = |phc: &str| phc.split('$').nth(3).map(str::to_owned);
        assert_eq!(params(DUMMY_HASH), params(&real), "update DUMMY_HASH with the parameters");
        let parsed = PasswordHash::new(DUMMY_HASH).expect("a PHC string");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(!verify_password(DUMMY_HASH, ""));
    }
}
