-- OIDC sign-in (#18): which provider identity a user is, and the sign-ins in flight.

-- The provider's stable identity of a user: issuer + `sub`. Null for users who never signed
-- in through the provider. A user found this way is the same user at every sign-in, whatever
-- their username or e-mail becomes upstream.
alter table users
    add column oidc_issuer  text,
    add column oidc_subject text,
    add constraint users_oidc_identity_key unique (oidc_issuer, oidc_subject),
    add constraint users_oidc_identity_both check ((oidc_issuer is null) = (oidc_subject is null));

-- A sign-in between the redirect to the provider and its return. The row is deleted when the
-- provider comes back (used once, whatever the outcome), and sign-ins older than ten minutes
-- are refused and swept. `state` and the browser cookie are stored as SHA-256 hex: the row
-- alone is not enough to finish someone's sign-in. The PKCE verifier is useless without the
-- authorization code, which only the browser receives, and lives at most ten minutes.
create table oidc_logins (
    state_hash      text primary key,
    browser_hash    text not null,
    nonce           text not null,
    pkce_verifier   text not null,
    created_at      timestamptz not null default now()
);
create index oidc_logins_created_idx on oidc_logins (created_at);
