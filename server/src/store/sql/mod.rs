//! The one query set of both backends: every trait impl of the store (`billing`,
//! `control`, `docs`, `events`, `export`, `usage`) and the row decoders (`rows`), written once with `$n` placeholders,
//! which Postgres and sqlx's SQLite driver both bind by number.
//!
//! This folder is compiled once per backend: `store/sqlite/mod.rs` and
//! `store/postgres/mod.rs` each declare it as their child module `sql`
//! (`#[path = "../sql/mod.rs"] mod sql;`) after naming their types `Store` (the store
//! struct), `Db` (the sqlx database) and `DbRow` (its row type), which the files here
//! import from `super`. So one text becomes two monomorphic trait impls, as a macro would
//! make them, but as plain Rust: rustfmt formats it, errors point at its real lines, and
//! it carries none of the trait bounds that code generic over `sqlx::Database` needs for
//! every bound and decoded type. Clippy's `duplicate_mod` is allowed on exactly those two
//! declarations.
//!
//! Where the dialects really differ (the hot append path, array binds vs multi-row
//! `VALUES`, a transaction's `BEGIN`, identity sequences), the code here calls the
//! backend through [`crate::store::dialect::Dialect`].

use super::{Db, DbRow, Store};

mod billing;
mod control;
mod docs;
mod events;
mod export;
mod history;
mod inserts;
mod invitations;
mod rows;
mod usage;
mod webhooks;
