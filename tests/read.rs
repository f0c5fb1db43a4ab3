//! Finding and reading mail: the list, the search language, the message page, threads, exports
//! and who may see what — against real PostgreSQL, with mail stored by the real pipeline.

mod common;

mod read {
    mod access;
    mod attachments;
    mod export;
    mod fixtures;
    mod reindex;
    mod search;
    mod tokenizer;
    mod view;
    mod walk;
}
