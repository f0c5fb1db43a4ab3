//! Proving and recovering the archive: `verify archive`, backup and restore, and exports a
//! third party can check — run as an operator runs them, against real PostgreSQL.

mod common;

mod trust {
    mod support;
    mod verify;
}
