//! SQL classification for pgpool-rs read/write splitting. [`classify`] parses a query text
//! with `pg_query` and tells where it may run ([`Route::Primary`], [`Route::LoadBalance`] or
//! [`Route::All`]) under Pgpool-II's streaming-replication rules, configured by [`Rules`];
//! [`ClassifierCache`] memoises the answer per query text so that a repeated statement costs a
//! hash lookup. The crate knows nothing about sessions: transaction state,
//! `disable_load_balance_on_write`, weights and replication delay are the server's business.

mod cache;
mod cacheable;
mod classify;
pub mod literal;
mod quick;
mod rules;
mod statement;
mod timestamp;

pub use cache::ClassifierCache;
pub use cacheable::{cache_facts, CacheFacts};
pub use classify::{
    classify, CatalogVerdicts, Classification, Route, StatementKind, TransactionKind,
};
pub use quick::{leading_kind, mentions_any, plain_select, terminate_backend_pid};
pub use rules::{RuleError, Rules, ALWAYS_WRITE_FUNCTIONS, BUILTIN_READ_ONLY_FUNCTIONS};
pub use timestamp::{
    is_time_expression, mentions_time_function, rewrite as rewrite_time_functions, TableColumns,
};
