-- Recovery codes (#9): 100 random bits each, stored as argon2id behind a 4-character selector,
-- replacing 40-bit codes stored as unsalted SHA-256 (reversible from a database copy in
-- minutes). The old codes are retired rather than kept working: their users see on the profile
-- page that they need new ones (their authenticator app keeps working meanwhile).
alter table users add column recovery_codes_retired boolean not null default false;
update users set recovery_codes_retired = true
 where id in (select user_id from recovery_codes where used_at is null);
delete from recovery_codes;
alter table recovery_codes drop constraint recovery_codes_pkey;
alter table recovery_codes add column selector text not null;
alter table recovery_codes add primary key (user_id, selector);
