//! Tenants: a token confined to a tenant creates in it and finds nothing of any other.

use tonic::Code;

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;

db_tests!(a_tenant_token_sees_only_its_tenant);

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
