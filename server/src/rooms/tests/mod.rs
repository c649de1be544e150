//! Engine tests: the real engine on a fresh SQLite directory, with connections running
//! the real session over in-memory transports ([`harness`]).

mod admin;
mod harness;
mod history;
mod hostile_presence;
mod inspect;
mod limits;
mod presence;
mod session_ext;
mod usage;
