//! Tenants: a token confined to a tenant creates in it and finds nothing of any other.

use tonic::Code;

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;

db_tests!(
    a_tenant_token_sees_only_its_tenant,
    gets_at_once_of_many_tenants_each_see_their_own,
);

/// A token confined to tenant `acme` creates in `acme` only, and finds nothing of another
/// tenant: Get, Watch, UpdateAction and Stop answer NOT_FOUND exactly as for an id that
/// does not exist, List returns `acme`'s executions whatever its filter says, and the
/// other tenant's execution is left unchanged.
async fn a_tenant_token_sees_only_its_tenant(server: &TestServer) {
    let server = TestServer::builder()
        .on(server.backend())
        .config(tokens_config())
        .start()
        .await;
    let mut client = server.client.clone();
    let ours = start_as(&mut client, ACME_WRITER_TOKEN, "ours", "")
        .await
        .expect("acme starts");
    assert_eq!(
        ours.user_key, "acme",
        "a confined token creates in its tenant"
    );
    let theirs = start_as(&mut client, WRITER_TOKEN, "theirs", "globex")
        .await
        .expect("ops starts for globex");

    let err = start_as(&mut client, ACME_WRITER_TOKEN, "smuggled", "globex")
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "OTHER_TENANT", None);

    for token in [ACME_READER_TOKEN, ACME_WRITER_TOKEN] {
        for id in [&theirs.id, &theirs.hashid] {
            let err = client
                .get_execution(bearer(token, get_request(id)))
                .await
                .unwrap_err();
            assert_error(&err, Code::NotFound, "EXECUTION_NOT_FOUND", None);
            let err = client
                .watch_execution(bearer(token, watch_request(id)))
                .await
                .unwrap_err();
            assert_error(&err, Code::NotFound, "EXECUTION_NOT_FOUND", None);
        }
        let page = client
            .list_executions(bearer(
                token,
                pb::ListExecutionsRequest {
                    user_key: "globex".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let keys: Vec<_> = page.executions.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["ours"], "List is confined to acme");
    }
    // The same answer as for an id that does not exist.
    let unknown = client
        .get_execution(bearer(
            ACME_READER_TOKEN,
            get_request("01890a5d-ac96-774b-bcce-b302099a8057"),
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let err = client
        .update_action(bearer(
            ACME_WRITER_TOKEN,
            report(&theirs.id, "a1", ActionStatus::Running),
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "EXECUTION_NOT_FOUND", None);
    let err = client
        .stop_execution(bearer(
            ACME_WRITER_TOKEN,
            stop_request(&theirs.id, "not ours"),
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "EXECUTION_NOT_FOUND", None);
    let untouched = client
        .get_execution(bearer(WRITER_TOKEN, get_request(&theirs.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(untouched.revision, 1);
    assert_eq!(untouched.status, ExecutionStatus::Running as i32);

    // Its own executions work as usual.
    let moved = client
        .update_action(bearer(
            ACME_WRITER_TOKEN,
            report(&ours.id, "a1", ActionStatus::Running),
        ))
        .await
        .expect("acme updates its own")
        .into_inner();
    assert_eq!(moved.revision, 2);
    server.stop().await;
}

/// FULL Gets in flight at once share the reads of their revisions: 200 at once, of both
/// tenants' executions by UUID and by hashid, from a confined token and an unconfined
/// one, plus ids of no execution. Each answer is the one a Get alone gets: the confined
/// token finds only its tenant's, the unconfined one both, an unknown id nothing.
async fn gets_at_once_of_many_tenants_each_see_their_own(server: &TestServer) {
    let server = TestServer::builder()
        .on(server.backend())
        .config(tokens_config())
        .start()
        .await;
    let mut client = server.client.clone();
    let ours = start_as(&mut client, ACME_WRITER_TOKEN, "ours", "")
        .await
        .unwrap();
    let theirs = start_as(&mut client, WRITER_TOKEN, "theirs", "globex")
        .await
        .unwrap();
    let unknown = uuid::Uuid::now_v7().to_string();
    let mut asks = Vec::new();
    for round in 0..20 {
        for (token, confined) in [(ACME_READER_TOKEN, true), (WRITER_TOKEN, false)] {
            for (id, ours_) in [
                (&ours.id, Some(true)),
                (&ours.hashid, Some(true)),
                (&theirs.id, Some(false)),
                (&theirs.hashid, Some(false)),
                (&unknown, None),
            ] {
                let mut client = client.clone();
                let id = id.clone();
                asks.push(tokio::spawn(async move {
                    let got = client.get_execution(bearer(token, get_request(&id))).await;
                    (round, confined, id, ours_, got)
                }));
            }
        }
    }
    for ask in asks {
        let (round, confined, id, ours_, got) = ask.await.unwrap();
        let expected = match ours_ {
            Some(true) => Some(&ours),
            Some(false) if !confined => Some(&theirs),
            _ => None,
        };
        match (expected, got) {
            (Some(e), Ok(got)) => {
                let got = got.into_inner();
                assert_eq!(
                    (&got.id, got.revision),
                    (&e.id, e.revision),
                    "{id} round {round}"
                );
            }
            (None, Err(err)) => assert_error(&err, Code::NotFound, "EXECUTION_NOT_FOUND", None),
            (expected, got) => panic!("{id} (confined {confined}): {expected:?} vs {got:?}"),
        }
    }
}
