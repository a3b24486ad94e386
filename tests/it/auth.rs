//! Bearer tokens and roles: without a known token no API call gets through, a reader
//! reads but never writes, and health stays open for probes.

use tonic::Code;

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;

db_tests!(tokens_and_roles_guard_every_call);

/// Without a token, or with an unknown one, every API call (unary or stream) is
/// UNAUTHENTICATED; a reader may read but not write (PERMISSION_DENIED); health answers
/// without a token; a refused call changes nothing.
async fn tokens_and_roles_guard_every_call(server: &TestServer) {
    let server = TestServer::builder()
        .on(server.backend())
        .config(tokens_config())
        .start()
        .await;
    let mut client = server.client.clone();
    let e = start_as(&mut client, WRITER_TOKEN, "guarded", "")
        .await
        .expect("a writer starts");

    for token in [
        None,
        Some("not-a-known-token"),
        Some(WRITER_TOKEN.to_uppercase().as_str()),
    ] {
        let err = client
            .get_execution(maybe_bearer(token, get_request(&e.id)))
            .await
            .unwrap_err();
        assert_error(&err, Code::Unauthenticated, "UNAUTHENTICATED", None);
        let err = client
            .start_execution(maybe_bearer(token, start_request_for("intruder", "")))
            .await
            .unwrap_err();
        assert_error(&err, Code::Unauthenticated, "UNAUTHENTICATED", None);
        let err = client
            .watch_execution(maybe_bearer(token, watch_request(&e.id)))
            .await
            .unwrap_err();
        assert_error(&err, Code::Unauthenticated, "UNAUTHENTICATED", None);
    }

    // A reader reads, lists and watches ...
    let read = client
        .get_execution(bearer(READER_TOKEN, get_request(&e.id)))
        .await
        .expect("a reader gets")
        .into_inner();
    assert_eq!(read.revision, 1);
    let page = client
        .list_executions(bearer(READER_TOKEN, pb::ListExecutionsRequest::default()))
        .await
        .expect("a reader lists")
        .into_inner();
    assert_eq!(page.executions.len(), 1);
    let mut watch = client
        .watch_execution(bearer(READER_TOKEN, watch_request(&e.id)))
        .await
        .expect("a reader watches")
        .into_inner();
    let snapshot = next_within(&mut watch, 10).await.unwrap().unwrap();
    assert_eq!(snapshot.revision, 1);

    // ... but changes nothing.
    let err = start_as(&mut client, READER_TOKEN, "by-reader", "")
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "READ_ONLY_TOKEN", None);
    let err = client
        .update_action(bearer(
            READER_TOKEN,
            report(&e.id, "a1", ActionStatus::Running),
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "READ_ONLY_TOKEN", None);
    let err = client
        .stop_execution(bearer(READER_TOKEN, stop_request(&e.id, "not allowed")))
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "READ_ONLY_TOKEN", None);

    // Health stays open for probes.
    assert_health(&server, ServingStatus::Serving).await;

    let after = client
        .list_executions(bearer(WRITER_TOKEN, pb::ListExecutionsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.executions.len(), 1, "refused calls created nothing");
    assert_eq!(
        after.executions[0].revision, 1,
        "refused calls changed nothing"
    );
    server.stop().await;
}
