use crate::common::auth::spawn_auth_app;
use crate::common::mail::{self, Mail};

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect(name) + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn old(subject: &str, id: &str) -> Vec<u8> {
    mail::build(&Mail {
        subject,
        message_id: id,
        date: 1_262_304_000, // 2010-01-01
        ..Mail::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_sets_a_policy_holds_one_account_previews_and_purges_in_the_ui() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let (sales, legal) = (
        app.insert_account("Sales").await,
        app.insert_account("Legal").await,
    );
    mail::archive(
        &app,
        sales,
        "INBOX",
        vec![old("quote", "q1@x"), old("order", "o1@x")],
    )
    .await;
    let held = mail::archive(&app, legal, "INBOX", vec![old("brief", "b1@x")]).await;

    let res = app
        .submit(
            &admin,
            "/retention",
            "/retention/policies",
            &[("name", "seven years"), ("keep_days", "2555")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let legal_id = legal.to_string();
    let res = app
        .submit(
            &admin,
            "/holds",
            "/holds",
            &[
                ("name", "lawsuit"),
                ("reason", "Smith v. Acme"),
                ("account", &legal_id),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (_, holds) = app.page(&admin, "/holds").await;
    assert!(
        holds.contains("lawsuit")
            && holds.contains("Smith v. Acme")
            && holds.contains("<td>1</td>"),
        "{holds}"
    );

    let (status, page) = app.page(&admin, "/retention").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Delete these 2 messages") && page.contains("1 held messages stay"),
        "{page}"
    );
    assert!(
        page.contains("/messages/") && page.contains("quote"),
        "the sample opens the messages"
    );
    let form = [
        ("as_of", hidden(&page, "as_of")),
        ("max_id", hidden(&page, "max_id")),
        ("fingerprint", hidden(&page, "fingerprint")),
        ("confirm", "yes".to_string()),
        ("csrf_token", crate::common::auth::csrf_from(&page)),
    ];
    let res = admin
        .post(app.url("/retention/purge"))
        .form(&form)
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 200);
    let done = res.text().await.expect("body");
    assert!(done.contains("Purged 2 messages"), "{done}");
    let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM messages ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .expect("ids");
    assert_eq!(left, held, "the held account's mail stays");

    let csv = admin
        .get(app.url("/retention/stats.csv"))
        .send()
        .await
        .expect("csv")
        .text()
        .await
        .expect("body");
    assert!(
        csv.contains("Sales,") && csv.contains(",retention,2,"),
        "{csv}"
    );
    let actions = app.audit_actions().await;
    for a in [
        "retention.policy_create",
        "hold.place",
        "retention.purge_batch",
        "retention.purge",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
}

/// A custom role holding `manage_retention` for one archive: every page and form stays within
/// that archive (a permission is a ceiling, not a key to every archive).
#[tokio::test(flavor = "multi_thread")]
async fn a_retention_manager_for_one_archive_reaches_only_that_archive_in_the_ui() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let (own, foreign) = (
        app.insert_account("Own mailbox").await,
        app.insert_account("Foreign mailbox").await,
    );
    sqlx::query(
        "INSERT INTO roles (name, permissions) VALUES ('Keeper', ARRAY['manage_retention'])",
    )
    .execute(&app.pool)
    .await
    .expect("role");
    app.create_user("keeper", "Keeper", &[own]).await;
    let keeper = app.sign_in("keeper", crate::common::auth::PASSWORD).await;
    let own_ids = mail::archive(&app, own, "INBOX", vec![old("own report", "r1@x")]).await;
    let foreign_ids =
        mail::archive(&app, foreign, "INBOX", vec![old("secret merger", "m1@x")]).await;
    let (own_s, foreign_s) = (own.to_string(), foreign.to_string());

    // Policies: every account, or a foreign one, are refused; nothing is stored.
    for fields in [
        vec![("name", "all"), ("keep_days", "1")],
        vec![
            ("name", "theirs"),
            ("keep_days", "1"),
            ("account", &foreign_s),
        ],
        vec![
            ("name", "both"),
            ("keep_days", "1"),
            ("account", &own_s),
            ("account", &foreign_s),
        ],
    ] {
        let res = app
            .submit(&keeper, "/retention", "/retention/policies", &fields)
            .await;
        assert_eq!(res.status(), 422, "{fields:?}");
    }
    let policies: i64 = sqlx::query_scalar("SELECT count(*) FROM retention_policies")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(policies, 0);
    // Holds likewise, with or without a query.
    for fields in [
        vec![("name", "all"), ("reason", "r")],
        vec![("name", "q"), ("reason", "r"), ("query", "subject:merger")],
        vec![("name", "theirs"), ("reason", "r"), ("account", &foreign_s)],
    ] {
        let res = app.submit(&keeper, "/holds", "/holds", &fields).await;
        assert_eq!(res.status(), 422, "{fields:?}");
    }

    // The administrator's installation-wide policy and hold, and a hold on the foreign archive.
    for (action, fields) in [
        (
            "/retention/policies",
            vec![("name", "a week everywhere"), ("keep_days", "7")],
        ),
        ("/holds", vec![("name", "everything"), ("reason", "audit")]),
        // Matches none of the mail: the foreign mail below is protected by the grants alone.
        (
            "/holds",
            vec![
                ("name", "foreign case"),
                ("reason", "Foreign v. Acme"),
                ("account", &foreign_s),
                ("query", "subject:unrelated"),
            ],
        ),
    ] {
        let page = if action == "/holds" {
            "/holds"
        } else {
            "/retention"
        };
        assert_eq!(
            app.submit(&admin, page, action, &fields).await.status(),
            303
        );
    }
    let (_, holds_page) = app.page(&keeper, "/holds").await;
    assert!(holds_page.contains("everything"), "{holds_page}");
    assert!(
        !holds_page.contains("foreign case") && !holds_page.contains("Foreign"),
        "a hold on another archive is not shown: {holds_page}"
    );
    let wide: i64 = sqlx::query_scalar("SELECT id FROM legal_holds WHERE name = 'everything'")
        .fetch_one(&app.pool)
        .await
        .expect("hold id");
    let res = app
        .submit(
            &keeper,
            "/holds",
            &format!("/holds/{wide}/release"),
            &[("reason", "mine now")],
        )
        .await;
    assert_eq!(
        res.status(),
        403,
        "an installation-wide hold is out of reach"
    );
    let res = app
        .submit(
            &admin,
            "/holds",
            &format!("/holds/{wide}/release"),
            &[("reason", "audit over")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let policy: i64 = sqlx::query_scalar("SELECT id FROM retention_policies")
        .fetch_one(&app.pool)
        .await
        .expect("policy id");
    let res = app
        .submit(
            &keeper,
            "/retention",
            &format!("/retention/policies/{policy}/delete"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(
        res.status(),
        403,
        "an installation-wide policy is out of reach"
    );

    // The preview and its sample show only the keeper's archive; Purge now purges only it.
    let (_, page) = app.page(&keeper, "/retention").await;
    assert!(page.contains("own report"), "{page}");
    assert!(
        !page.contains("secret merger") && !page.contains("Foreign mailbox"),
        "nothing of another archive shows: {page}"
    );
    assert!(page.contains("Delete these 1 messages"), "{page}");
    let form = [
        ("as_of", hidden(&page, "as_of")),
        ("max_id", hidden(&page, "max_id")),
        ("fingerprint", hidden(&page, "fingerprint")),
        ("confirm", "yes".to_string()),
        ("csrf_token", crate::common::auth::csrf_from(&page)),
    ];
    let res = keeper
        .post(app.url("/retention/purge"))
        .form(&form)
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 200);
    let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM messages ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .expect("ids");
    assert_eq!(left, foreign_ids, "the foreign archive is out of reach");
    assert!(!own_ids.is_empty());
}

fn form_with_ids<'a>(
    ids: &'a [String],
    extra: &[(&'a str, &'a str)],
    token: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut form: Vec<(&str, &str)> = ids.iter().map(|id| ("id", id.as_str())).collect();
    form.extend_from_slice(extra);
    form.push(("csrf_token", token));
    form
}

/// Hand-picked hold, "held" badges, and a four-eyes deletion from the message list, as people
/// click through it: the requester cannot approve, nothing goes before a second person does,
/// and the held message stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_selection_is_held_and_deleted_from_the_list_with_a_second_persons_approval() {
    let app = crate::common::spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.retention.require_approval = true;
    })
    .await;
    let admin = app.set_up_admin().await;
    let sales = app.insert_account("Sales").await;
    let ids = mail::archive(
        &app,
        sales,
        "INBOX",
        vec![
            old("contract draft", "c1@x"),
            old("lunch menu", "l1@x"),
            old("party", "p1@x"),
        ],
    )
    .await;
    let (contract, lunch, party) = (ids[0], ids[1], ids[2]);
    let (_, list) = app.page(&admin, "/messages").await;
    let token = crate::common::auth::csrf_from(&list);
    assert!(
        list.contains("formaction=\"/messages/delete\"")
            && list.contains("formaction=\"/messages/hold\"")
    );

    // Hold the contract: the confirmation, then the hold.
    let one = [contract.to_string()];
    let res = admin
        .post(app.url("/messages/hold"))
        .form(&form_with_ids(&one, &[], &token))
        .send()
        .await
        .unwrap();
    let page = res.text().await.unwrap();
    assert!(page.contains("1 message</strong> selected"), "{page}");
    let res = admin
        .post(app.url("/messages/hold"))
        .form(&form_with_ids(
            &one,
            &[
                ("confirm", "yes"),
                ("name", "Smith v. Acme"),
                ("reason", "preserve the contract"),
            ],
            &token,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, list) = app.page(&admin, "/messages").await;
    assert_eq!(list.matches("class=\"badge held\"").count(), 1, "{list}");
    let (_, view) = app.page(&admin, &format!("/messages/{contract}")).await;
    assert!(view.contains("id=\"held-badge\""), "{view}");
    let (_, view) = app.page(&admin, &format!("/messages/{lunch}")).await;
    assert!(!view.contains("id=\"held-badge\""));

    // Delete all three: the confirmation counts the held one, which stays.
    let three = [contract.to_string(), lunch.to_string(), party.to_string()];
    let res = admin
        .post(app.url("/messages/delete"))
        .form(&form_with_ids(&three, &[], &token))
        .send()
        .await
        .unwrap();
    let page = res.text().await.unwrap();
    assert!(
        page.contains(
            "3 messages</strong> selected; <strong>1</strong> is under a legal hold and will stay"
        ) && page.contains("Request deletion of 2"),
        "{page}"
    );
    let res = admin
        .post(app.url("/messages/delete"))
        .form(&form_with_ids(
            &three,
            &[("confirm", "yes"), ("reason", "misfiled")],
            &token,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/deletions?requested="), "{location}");
    let request: i64 = location.rsplit('=').next().unwrap().parse().unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM messages")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 3, "nothing is deleted before approval");
    let (_, deletions) = app.page(&admin, &location).await;
    assert!(
        deletions.contains("waiting for approval")
            && deletions.contains("another person must decide"),
        "{deletions}"
    );
    let res = admin
        .post(app.url(&format!("/deletions/{request}/approve")))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409, "the requester cannot approve");
    assert_eq!(count().await, 3);

    // A second person who may delete mail approves; the held contract stays.
    sqlx::query("INSERT INTO roles (name, permissions, all_accounts) VALUES ('Deleter', ARRAY['view_mail', 'delete_mail'], true)")
        .execute(&app.pool)
        .await
        .unwrap();
    app.create_user("second", "Deleter", &[]).await;
    let second = app.sign_in("second", crate::common::auth::PASSWORD).await;
    let (_, deletions) = app.page(&second, "/deletions").await;
    assert!(
        deletions.contains(&format!("/deletions/{request}/approve")),
        "{deletions}"
    );
    let res = app
        .submit(
            &second,
            "/deletions",
            &format!("/deletions/{request}/approve"),
            &[],
        )
        .await;
    assert_eq!(res.status(), 303);
    let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM messages ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, vec![contract]);
    let (_, deletions) = app.page(&second, "/deletions").await;
    assert!(
        deletions.contains("deleted 2") && deletions.contains("1 held, kept"),
        "{deletions}"
    );
    let actions = app.audit_actions().await;
    for a in [
        "hold.add_messages",
        "mail.delete_request",
        "mail.delete_approve",
        "mail.delete",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
}

/// The policy editor changes a policy (audited) and switches it off; a disabled policy purges
/// nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_edits_and_disables_a_policy() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let sales = app.insert_account("Sales").await;
    mail::archive(&app, sales, "INBOX", vec![old("quote", "q1@x")]).await;
    let res = app
        .submit(
            &admin,
            "/retention",
            "/retention/policies",
            &[("name", "short"), ("keep_days", "30")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let id: i64 = sqlx::query_scalar("SELECT id FROM retention_policies")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (_, page) = app.page(&admin, "/retention").await;
    assert!(
        page.contains(&format!("href=\"/retention/policies/{id}\""))
            && page.contains("Delete these 1 messages")
    );
    let (status, editor) = app.page(&admin, &format!("/retention/policies/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        editor.contains("value=\"30\"")
            && editor.contains("name=\"enabled\" value=\"yes\" checked"),
        "{editor}"
    );
    let res = app
        .submit(
            &admin,
            &format!("/retention/policies/{id}"),
            &format!("/retention/policies/{id}"),
            &[("name", "seven years"), ("keep_days", "2555")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (name, keep, enabled): (String, i32, bool) = sqlx::query_as(
        "SELECT name::text, keep_days, enabled FROM retention_policies WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((name.as_str(), keep, enabled), ("seven years", 2555, false));
    let (_, page) = app.page(&admin, "/retention").await;
    assert!(
        page.contains("disabled") && page.contains("Nothing would be purged now"),
        "{page}"
    );
    assert!(
        app.audit_actions()
            .await
            .iter()
            .any(|a| a == "retention.policy_update")
    );
}
