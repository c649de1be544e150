//! Dashboard credentials: argon2id password hashing with OWASP's parameters, the length
//! policy, and email normalisation (so one person cannot sign up twice by case).

use std::fmt;

use argon2::password_hash::{self, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::{fill_random, RandomError};

/// Argon2 memory cost in KiB: 19 MiB, OWASP's recommended minimum for argon2id.
pub const ARGON2_M_COST: u32 = 19 * 1024;
/// Argon2 iterations (OWASP: 2 at 19 MiB).
pub const ARGON2_T_COST: u32 = 2;
/// Argon2 parallelism (OWASP: 1).
pub const ARGON2_P_COST: u32 = 1;
/// Shortest password accepted at sign-up or change, in characters (Unicode scalar
/// values, so a passphrase in any script counts the same as in ASCII).
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted, in bytes. Argon2 itself takes any length, but an unbounded
/// input would let a client make each login attempt arbitrarily expensive (the input is
/// hashed with Blake2b before the memory-hard part, which is cheap, but the request body
/// and the copies are not).
pub const MAX_PASSWORD_BYTES: usize = 256;
/// Longest email address accepted, in bytes (RFC 5321's path limit minus the brackets).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest local part (before `@`), in bytes (RFC 5321).
pub const MAX_EMAIL_LOCAL_BYTES: usize = 64;

/// A hash of a random password with the current parameters, verified against when the
/// account does not exist, so "no such user" takes as long as "wrong password" and login
/// does not reveal which emails have accounts. Its password is unknown (it was random and
/// discarded), and a test checks it still matches the current parameters.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$IgS7QJsQ9inBA/OFJ4ylgg$fjABo3/9EUTn+mLtYAJbWlrfoDuKk/aNa4Vh9ae3JGo";

/// Why a password could not be hashed or checked. The messages are safe to show the user
/// (none contains the password).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    #[error("password must be at least {min} characters long")]
    TooShort {
        /// [`MIN_PASSWORD_CHARS`].
        min: usize,
    },
    /// More than [`MAX_PASSWORD_BYTES`] bytes.
    #[error("password must be at most {max} bytes long")]
    TooLong {
        /// [`MAX_PASSWORD_BYTES`].
        max: usize,
    },
    /// Guessable: a common or breached password, a keyboard pattern, a repeat, a
    /// dictionary word with obvious substitutions (zxcvbn's estimate is below
    /// [`MIN_PASSWORD_SCORE`]).
    #[error("password is too easy to guess{0}; use a longer passphrase of unrelated words")]
    TooWeak(String),
    /// No randomness for the salt.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The stored hash is not a PHC string this module can read: corrupt data, not a
    /// wrong password.
    #[error("stored password hash is invalid: {0}")]
    InvalidStoredHash(password_hash::Error),
    /// Argon2 itself failed (should not happen with fixed, valid parameters).
    #[error("password hashing failed: {0}")]
    Hashing(password_hash::Error),
}

/// The lowest zxcvbn score (0 to 4) accepted: 3 is "safely unguessable: moderate
/// protection from offline slow-hash scenarios" (about 10^8 guesses or more).
pub const MIN_PASSWORD_SCORE: u8 = 3;

/// Checks the length rules only (what every stored hash satisfies).
fn check_length(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong {
            max: MAX_PASSWORD_BYTES,
        });
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort {
            min: MIN_PASSWORD_CHARS,
        });
    }
    Ok(())
}

/// The policy for a new password, checked without hashing so forms answer quickly: the
/// length rules, then strength by zxcvbn, whose compiled-in lists (the most common
/// passwords from breach corpora, English words, names, keyboard patterns) make a
/// breached or common password, `aaaaaaaaaa` or `Password123!` fail. `user_inputs` (the
/// email, the tenant name) count as known to an attacker.
pub fn check_password_policy(password: &str, user_inputs: &[&str]) -> Result<(), PasswordError> {
    check_length(password)?;
    let estimate = zxcvbn::zxcvbn(password, user_inputs);
    if u8::from(estimate.score()) < MIN_PASSWORD_SCORE {
        let warning = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| format!(" ({})", w.to_string().trim_end_matches('.').to_lowercase()))
            .unwrap_or_default();
        return Err(PasswordError::TooWeak(warning));
    }
    Ok(())
}

/// Hashes `password` with argon2id (m = 19456 KiB, t = 2, p = 1) and a fresh 16-byte salt,
/// returning the PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) to store.
/// Slow on purpose (tens of milliseconds in release builds): call it off the async
/// executor (`spawn_blocking`).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    check_length(password)?;
    let mut salt = [0u8; 16];
    fill_random(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hashing)?;
    let hash = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(PasswordError::Hashing)?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string `phc`. The comparison is
/// constant-time (inside argon2). `Err` only when `phc` is unreadable: a wrong password
/// is `Ok(false)`. Slow like [`hash_password`].
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(PasswordError::InvalidStoredHash)?;
    // No stored hash can be of a longer password (hash_password refuses them), so answer
    // without paying for a hash an attacker chose the size of.
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    // The parameters come from `phc`, so hashes made with older parameters still verify;
    // `needs_rehash` tells the caller to upgrade them after a successful login.
    match hasher()?.verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(other) => Err(PasswordError::InvalidStoredHash(other)),
    }
}

/// Spends the time of one [`verify_password`] without an account, for logins with an
/// unknown email, so response times do not reveal which emails are registered.
pub fn verify_dummy_password(password: &str) {
    // The result is meaningless (the dummy's password is unknown); only the time matters.
    let _ = verify_password(password, DUMMY_HASH);
}

/// Whether a stored hash uses other than the current algorithm or parameters and should
/// be replaced by `hash_password` of the password the user just proved they know.
/// Unreadable hashes need rehashing too.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() || parsed.version != Some(0x13) {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(params) => {
            params.m_cost() != ARGON2_M_COST
                || params.t_cost() != ARGON2_T_COST
                || params.p_cost() != ARGON2_P_COST
        }
        Err(_) => true,
    }
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, None)
        .map_err(|e| PasswordError::Hashing(e.into()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A normalised email address: trimmed, lowercase, and shaped like an address. The only
/// way to make one is [`normalize_email`], so a store function taking `&Email` cannot be
/// handed an unnormalised string (which would let `Bob@x.io` and `bob@x.io` be two users).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@` (e.g. for per-domain sign-up rules).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        normalize_email(&value)
    }
}

impl<'de> serde::Deserialize<'de> for Email {
    /// Deserialising normalises and validates, so a form body with an `Email` field is
    /// already checked.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        normalize_email(&raw).map_err(serde::de::Error::custom)
    }
}

/// Why a string is not an acceptable email address; messages are for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing but whitespace.
    #[error("email address is empty")]
    Empty,
    /// Longer than [`MAX_EMAIL_BYTES`] (or a local part over [`MAX_EMAIL_LOCAL_BYTES`]).
    #[error("email address is too long")]
    TooLong,
    /// Whitespace or a control character inside the address.
    #[error("email address must not contain spaces or control characters")]
    InvalidCharacter,
    /// Not exactly one `@`.
    #[error("email address must contain exactly one @")]
    NotOneAt,
    /// Nothing before the `@`.
    #[error("email address has nothing before the @")]
    EmptyLocalPart,
    /// The part after the `@` is not a dotted domain name.
    #[error("email address must end in a domain name such as example.com")]
    InvalidDomain,
}

/// Normalises an email address: trims surrounding whitespace, lowercases, and checks the
/// basic shape (one `@`, non-empty local part, a domain with a dot and no empty labels,
/// no whitespace or control characters, at most 254 bytes). Deliberately not a full RFC
/// 5322 parser: the confirmation email is the real check.
pub fn normalize_email(raw: &str) -> Result<Email, EmailError> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err(EmailError::Empty);
    }
    if email.len() > MAX_EMAIL_BYTES {
        return Err(EmailError::TooLong);
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EmailError::InvalidCharacter);
    }
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(EmailError::NotOneAt);
    };
    if local.is_empty() {
        return Err(EmailError::EmptyLocalPart);
    }
    if local.len() > MAX_EMAIL_LOCAL_BYTES {
        return Err(EmailError::TooLong);
    }
    // `a@b..c`, `a@.b.c` and `a@b.c.` all have an empty label.
    if !domain.contains('.') || domain.split('.').any(str::is_empty) {
        return Err(EmailError::InvalidDomain);
    }
    Ok(Email(email))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify_accepts_the_password_and_rejects_others() {
        // One hash for all the checks: argon2 at 19 MiB is slow in debug builds.
        let phc = hash_password("correct horse battery").unwrap();
        assert!(verify_password("correct horse battery", &phc).unwrap());
        assert!(!verify_password("correct horse batterY", &phc).unwrap());
        assert!(!verify_password("", &phc).unwrap());
        // Too long to be anyone's password: false without hashing.
        assert!(!verify_password(&"x".repeat(MAX_PASSWORD_BYTES + 1), &phc).unwrap());

        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(phc.contains("$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(!needs_rehash(&phc));
    }

    #[test]
    fn salts_differ_between_hashes_of_the_same_password() {
        let a = hash_password("the same password").unwrap();
        let b = hash_password("the same password").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn length_policy() {
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort { min: 10 })
        ));
        assert!(matches!(
            check_password_policy("123456789", &[]),
            Err(PasswordError::TooShort { .. })
        ));
        assert!(check_length("1234567890").is_ok());
        // Characters, not bytes: ten 2-byte characters are long enough.
        assert!(check_length("éééééééééé").is_ok());
        assert!(matches!(
            check_password_policy("ééééééééé", &[]),
            Err(PasswordError::TooShort { .. })
        ));
        assert!(check_length(&"x".repeat(MAX_PASSWORD_BYTES)).is_ok());
        assert!(matches!(
            hash_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PasswordError::TooLong { max: 256 })
        ));
        let message = PasswordError::TooShort { min: 10 }.to_string();
        assert_eq!(message, "password must be at least 10 characters long");
    }

    #[test]
    fn common_and_guessable_passwords_are_refused() {
        for weak in [
            "aaaaaaaaaa",
            "1234567890",
            "password123",
            "Password123!",
            "qwertyuiop",
            "iloveyou123",
            "ada@example.com1",
        ] {
            let refused = check_password_policy(weak, &["ada@example.com", "ada"]);
            assert!(
                matches!(refused, Err(PasswordError::TooWeak(_))),
                "{weak}: {refused:?}"
            );
        }
        let message = check_password_policy("aaaaaaaaaa", &[])
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("password is too easy to guess"),
            "{message}"
        );
        for strong in [
            "correct horse battery staple",
            "tulip-orbit-canvas-41",
            "q8Zr#t2Lw!m9",
        ] {
            assert!(check_password_policy(strong, &[]).is_ok(), "{strong}");
        }
    }

    #[test]
    fn unreadable_stored_hash_is_an_error_not_a_mismatch() {
        assert!(matches!(
            verify_password("whatever password", "not a phc string"),
            Err(PasswordError::InvalidStoredHash(_))
        ));
        assert!(needs_rehash("not a phc string"));
    }

    #[test]
    fn older_parameters_need_rehash() {
        // Valid PHC strings with other parameters or algorithms (not verified here, only
        // parsed, so no hashing cost).
        let salt_and_hash = "c29tZXNhbHRzb21lc2FsdA$Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmE";
        let weaker = format!("$argon2id$v=19$m=4096,t=3,p=1${salt_and_hash}");
        let argon2i = format!("$argon2i$v=19$m=19456,t=2,p=1${salt_and_hash}");
        let current = format!("$argon2id$v=19$m=19456,t=2,p=1${salt_and_hash}");
        assert!(needs_rehash(&weaker));
        assert!(needs_rehash(&argon2i));
        assert!(!needs_rehash(&current));
    }

    #[test]
    fn dummy_hash_uses_the_current_parameters() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!needs_rehash(DUMMY_HASH));
        verify_dummy_password("anything at all");
    }

    #[test]
    fn email_normalisation() {
        let email = normalize_email("  Alice.Smith+tag@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "alice.smith+tag@example.com");
        assert_eq!(email.domain(), "example.com");
        assert_eq!(email.to_string(), "alice.smith+tag@example.com");
        assert_eq!(
            normalize_email("BOB@X.IO").unwrap(),
            normalize_email("bob@x.io").unwrap()
        );
        assert_eq!(normalize_email("a@b.co").unwrap().as_str(), "a@b.co");
        assert_eq!(
            normalize_email("Ünïcode@Exämple.de").unwrap().as_str(),
            "ünïcode@exämple.de"
        );
    }

    #[test]
    fn email_shape_errors() {
        use EmailError::*;
        let cases = [
            ("", Empty),
            ("   ", Empty),
            ("alice", NotOneAt),
            ("alice@bob@example.com", NotOneAt),
            ("@example.com", EmptyLocalPart),
            ("alice@", InvalidDomain),
            ("alice@localhost", InvalidDomain),
            ("alice@.example.com", InvalidDomain),
            ("alice@example.com.", InvalidDomain),
            ("alice@example..com", InvalidDomain),
            ("al ice@example.com", InvalidCharacter),
            ("alice@exa\tmple.com", InvalidCharacter),
            ("alice\u{0}@example.com", InvalidCharacter),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize_email(raw), Err(expected), "{raw:?}");
        }
    }

    #[test]
    fn email_length_limits() {
        let domain = "@example.com";
        let local = "a".repeat(MAX_EMAIL_LOCAL_BYTES);
        assert!(normalize_email(&format!("{local}{domain}")).is_ok());
        assert_eq!(
            normalize_email(&format!("a{local}{domain}")),
            Err(EmailError::TooLong)
        );
        // 254 bytes exactly is fine, 255 is not.
        let long_domain = format!("{}.com", "d".repeat(MAX_EMAIL_BYTES - 2 - 4));
        let at_limit = format!("a@{long_domain}");
        assert_eq!(at_limit.len(), MAX_EMAIL_BYTES);
        assert!(normalize_email(&at_limit).is_ok());
        assert_eq!(
            normalize_email(&format!("ab@{long_domain}")),
            Err(EmailError::TooLong)
        );
    }

    #[test]
    fn email_deserialises_normalised() {
        let email: Email = serde_json::from_str("\"  Carol@Example.org \"").unwrap();
        assert_eq!(email.as_str(), "carol@example.org");
        assert_eq!(
            serde_json::to_string(&email).unwrap(),
            "\"carol@example.org\""
        );
        assert!(serde_json::from_str::<Email>("\"no-at-sign\"").is_err());
    }
}
