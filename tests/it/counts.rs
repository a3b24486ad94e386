//! CountExecutions: exact counts, in total and by status, under List's filters, confined
//! to the caller's tenant.

use executions::proto::v1 as pb;
use tonic::Code;

use crate::db_tests;
use crate::harness::*;

db_tests!(counts_are_exact_and_follow_the_filters_of_list);
db_tests!(config = super::tokens_config; a_confined_token_counts_its_tenant_only);

/// Executions in every status, of two keys, two tenants and two data values: the count
/// and the counts by status are exact (every status present, zero included, adding up to
/// the count), and under each filter equal what List finds.
async fn counts_are_exact_and_follow_the_filters_of_list(server: &TestServer) {
    let mut client = server.client.clone();
    let mut started = Vec::new();
    for i in 0..12 {
        let mut request = start_request_for(if i % 2 == 0 { "even" } else { "odd" }, "");
        request.user_key = if i < 8 { "main".into() } else { "other".into() };
        request.execution_data = Some(to_struct(&serde_json::json!({ "tier": i % 3 })));
        started.push(client.start_execution(request).await.unwrap().into_inner());
    }
    // One stopped, one completed, one failed; the rest running.
    client
        .stop_execution(stop_request(&started[0].id, "done"))
        .await
        .unwrap();
    for node in ["a1", "a2"] {
        update(&mut client, &started[1].id, node, ActionStatus::Running).await;
        update(&mut client, &started[1].id, node, ActionStatus::Completed).await;
    }
    update(&mut client, &started[2].id, "a1", ActionStatus::Failed).await;

    let counter = client.clone();
    let count = |request: pb::CountExecutionsRequest| {
        let mut client = counter.clone();
        async move { client.count_executions(request).await.unwrap().into_inner() }
    };
    let all = count(pb::CountExecutionsRequest::default()).await;
    assert_eq!(all.count, 12);
    let by =
        |c: &pb::CountExecutionsResponse, s: ExecutionStatus| c.counts_by_status[s.as_str_name()];
    assert_eq!(all.counts_by_status.len(), 4, "{:?}", all.counts_by_status);
    assert_eq!(by(&all, ExecutionStatus::Running), 9);
    assert_eq!(by(&all, ExecutionStatus::Stopped), 1);
    assert_eq!(by(&all, ExecutionStatus::Completed), 1);
    assert_eq!(by(&all, ExecutionStatus::Failed), 1);

    let filters = [
        pb::CountExecutionsRequest {
            statuses: vec![
                ExecutionStatus::Running as i32,
                ExecutionStatus::Failed as i32,
            ],
            ..Default::default()
        },
        pb::CountExecutionsRequest {
            key: "even".into(),
            ..Default::default()
        },
        pb::CountExecutionsRequest {
            user_key: "other".into(),
            ..Default::default()
        },
        pb::CountExecutionsRequest {
            execution_data: Some(to_struct(&serde_json::json!({ "tier": 1 }))),
            key: "odd".into(),
            ..Default::default()
        },
    ];
    for filter in filters {
        let counted = count(filter.clone()).await;
        let listed = client
            .list_executions(pb::ListExecutionsRequest {
                page_size: 500,
                statuses: filter.statuses.clone(),
                key: filter.key.clone(),
                user_key: filter.user_key.clone(),
                execution_data: filter.execution_data.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .executions;
        assert_eq!(counted.count, listed.len() as i64, "{filter:?}");
        for status in [
            ExecutionStatus::Running,
            ExecutionStatus::Completed,
            ExecutionStatus::Failed,
            ExecutionStatus::Stopped,
        ] {
            let listed = listed.iter().filter(|e| e.status() == status).count() as i64;
            assert_eq!(by(&counted, status), listed, "{status:?} under {filter:?}");
        }
    }
    let err = client
        .count_executions(pb::CountExecutionsRequest {
            statuses: vec![0],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_error(
        &err,
        Code::InvalidArgument,
        "INVALID_STATUS",
        Some("statuses[0]"),
    );
}

/// A token confined to tenant `acme` counts acme's executions only, whatever `user_key`
/// it names.
async fn a_confined_token_counts_its_tenant_only(server: &TestServer) {
    let mut client = server.client.clone();
    for (token, n) in [(WRITER_TOKEN, 3), (ACME_WRITER_TOKEN, 2)] {
        for _ in 0..n {
            let request = bearer(
                token,
                pb::StartExecutionRequest {
                    key: "tenancy".into(),
                    template: Some(chain(1)),
                    ..Default::default()
                },
            );
            client.start_execution(request).await.unwrap();
        }
    }
    for user_key in ["", "main", "acme"] {
        let counted = client
            .count_executions(bearer(
                ACME_READER_TOKEN,
                pb::CountExecutionsRequest {
                    user_key: user_key.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(counted.count, 2, "acme's, asked for {user_key:?}");
    }
    let everything = client
        .count_executions(bearer(READER_TOKEN, pb::CountExecutionsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(everything.count, 5);
}
