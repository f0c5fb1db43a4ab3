-- IMAP folder names as people read them (#12). Servers spell non-ASCII folder names in modified
-- UTF-7 (RFC 3501 5.1.3: `Entw&APw-rfe` is `Entwürfe`). From now on the archive stores the
-- decoded name (search `folder:Entwürfe`, pages, exports) and the sync uses the listed wire name
-- for commands. Rows archived before keep working: this migration renames their folders.

-- The decoded name when `name` is canonical modified UTF-7, otherwise `name` unchanged. The
-- same rules as `ingest::imap::utf7::decode` (a test compares the two): only the encoding an
-- encoder produces decodes, so names and encodings map one to one.
create function mutf7_decode(name text) returns text
language plpgsql immutable strict as $$
declare
    alphabet constant text := 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,';
    result text := '';
    i int := 1;
    n int := length(name);
    close int;
    run text;
    bits bigint;
    nbits int;
    v int;
    units int[];
    u int;
    lo int;
    cp int;
    k int;
    after_run boolean := false;
begin
    if name !~ '^[ -~]*$' then
        return name;
    end if;
    while i <= n loop
        if substr(name, i, 1) <> '&' then
            result := result || substr(name, i, 1);
            i := i + 1;
            after_run := false;
            continue;
        end if;
        close := strpos(substr(name, i + 1), '-');
        if close = 0 then
            return name;
        end if;
        run := substr(name, i + 1, close - 1);
        i := i + close + 1;
        if run = '' then
            result := result || '&';
            after_run := false;
            continue;
        end if;
        if after_run then
            return name;
        end if;
        bits := 0;
        nbits := 0;
        units := '{}';
        for k in 1 .. length(run) loop
            v := strpos(alphabet, substr(run, k, 1)) - 1;
            if v < 0 then
                return name;
            end if;
            bits := (bits << 6) | v;
            nbits := nbits + 6;
            if nbits >= 16 then
                nbits := nbits - 16;
                units := units || ((bits >> nbits) & 65535)::int;
                bits := bits & ((1::bigint << nbits) - 1);
            end if;
        end loop;
        if nbits >= 8 or bits <> 0 or cardinality(units) = 0
           or length(run) <> (cardinality(units) * 16 + 5) / 6 then
            return name;
        end if;
        k := 1;
        while k <= cardinality(units) loop
            u := units[k];
            if u between 55296 and 56319 then
                if k = cardinality(units) then
                    return name;
                end if;
                lo := units[k + 1];
                if lo not between 56320 and 57343 then
                    return name;
                end if;
                cp := 65536 + ((u - 55296) << 10) + (lo - 56320);
                k := k + 2;
            elsif u between 56320 and 57343 then
                return name;
            else
                cp := u;
                k := k + 1;
            end if;
            if cp = 0 or cp between 32 and 126 then
                return name;
            end if;
            result := result || chr(cp);
        end loop;
        after_run := true;
    end loop;
    return result;
end
$$;

-- Renames the folders of IMAP accounts' rows from wire names to decoded names. A folder whose
-- decoded name is already in use for the account (a server that listed the same folder both
-- ways) keeps its wire name rather than merging two folders. Runs once here; a test runs it
-- again over rows written the old way.
create function mutf7_rename_folders() returns void
language plpgsql as $$
begin
    create temporary table mutf7_renames on commit drop as
    select distinct s.account_id, s.folder as wire, mutf7_decode(s.folder) as name
    from (select account_id, folder from sync_state
          union select account_id, folder from messages
          union select account_id, folder from ledger_entries
          union select account_id, folder from quarantine where account_id is not null
          union select account_id, folder from scan_rejections where account_id is not null) s
    join accounts a on a.id = s.account_id and a.kind = 'imap'
    where s.folder like '%&%' and mutf7_decode(s.folder) <> s.folder;
    delete from mutf7_renames r
    where exists (select 1 from sync_state x where x.account_id = r.account_id and x.folder = r.name)
       or exists (select 1 from messages x where x.account_id = r.account_id and x.folder = r.name)
       or exists (select 1 from ledger_entries x
                  where x.account_id = r.account_id and x.folder = r.name);
    update sync_state t set folder = r.name from mutf7_renames r
        where t.account_id = r.account_id and t.folder = r.wire;
    update messages t set folder = r.name from mutf7_renames r
        where t.account_id = r.account_id and t.folder = r.wire;
    update ledger_entries t set folder = r.name from mutf7_renames r
        where t.account_id = r.account_id and t.folder = r.wire;
    update quarantine t set folder = r.name from mutf7_renames r
        where t.account_id = r.account_id and t.folder = r.wire;
    update scan_rejections t set folder = r.name from mutf7_renames r
        where t.account_id = r.account_id and t.folder = r.wire;
    drop table mutf7_renames;
end
$$;

select mutf7_rename_folders();
