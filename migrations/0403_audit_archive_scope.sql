-- Which archives an audit row concerns (#9), so that a user with view_audit whose grants
-- cover only some archive accounts sees only the rows about those (filtered in SQL; see
-- SECURITY.md "Who sees which audit rows"). `accounts`: the archive accounts the row is about
-- (NULL: none, e.g. a sign-in); `all_accounts`: the action concerned every archive (a search
-- or reindex over all of them). Neither is covered by the row's MAC: they decide who may see a
-- row, not what it says; `daygle verify audit` and all-archive auditors see every row.
alter table audit_log add column accounts bigint[];
alter table audit_log add column all_accounts boolean not null default false;
create index audit_log_accounts_idx on audit_log using gin (accounts);

-- The archive accounts an audit target (`kind:id`) belongs to, as the database knows them
-- now; NULL for targets that belong to no archive (users, roles, alerts) or that are gone.
-- PL/pgSQL because holds, policies and deletion requests come from a later-numbered
-- migration (05xx): each branch is planned only when a target of its kind is met, and there
-- is none before those tables exist.
create function audit_target_accounts(target text) returns bigint[]
language plpgsql stable as $$
declare
  t_kind text := split_part(target, ':', 1);
  t_id text := split_part(target, ':', 2);
  result bigint[];
begin
  if t_kind = 'account' then
    result := array[t_id::bigint];
  elsif t_kind = 'message' then
    select array[m.account_id] into result from messages m where m.id = t_id::bigint;
  elsif t_kind = 'quarantine' then
    select array[q.account_id] into result from quarantine q
     where q.id = t_id::uuid and q.account_id is not null;
  elsif t_kind = 'legal_hold' then
    select case when h.all_accounts then array(select a.id from accounts a order by a.id)
                else array(select x.account_id from legal_hold_accounts x
                            where x.hold_id = h.id order by x.account_id) end
      into result from legal_holds h where h.id = t_id::bigint;
  elsif t_kind = 'retention_policy' then
    select case when p.all_accounts then array(select a.id from accounts a order by a.id)
                else array(select x.account_id from retention_policy_accounts x
                            where x.policy_id = p.id order by x.account_id) end
      into result from retention_policies p where p.id = t_id::bigint;
  elsif t_kind = 'deletion_request' then
    result := array(select distinct i.account_id from deletion_request_items i
                     where i.request_id = t_id::bigint order by 1);
  end if;
  return result;
end
$$;

-- Rows written before this migration: bound by their target where it still resolves, grant
-- changes by the accounts they granted or took away, whole-archive actions as such. Searches
-- and exports from before carry no archive list: only all-archive auditors see those.
alter table audit_log disable trigger audit_log_no_update;
update audit_log set accounts = audit_target_accounts(target)
 where target ~ '^(account|message|quarantine|legal_hold|retention_policy|deletion_request):';
update audit_log set accounts = array(
    select distinct v::bigint
      from jsonb_array_elements_text(
             case when jsonb_typeof(details->'accounts') = 'array' then details->'accounts' else '[]'::jsonb end
          || case when jsonb_typeof(details->'accounts_before') = 'array' then details->'accounts_before' else '[]'::jsonb end
           ) v
     order by 1)
 where action in ('user.create', 'user.grants');
update audit_log set all_accounts = true where target = 'archive';
alter table audit_log enable trigger audit_log_no_update;
