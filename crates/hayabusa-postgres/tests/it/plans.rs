//! Every query, and every write that looks rows up, reads index ranges: none scans a
//! table or walks a whole index. Checked on PostgreSQL's own plans (with sequential
//! scans priced out, so that the empty tables of a test do not make them cheapest).

use crate::support::TestDatabase;
use tokio_postgres::SimpleQueryMessage;

/// The plan's problems: sequential scans, and index scans without an index condition
/// (a walk over the whole index).
fn problems(plan: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for (at, line) in plan.iter().enumerate() {
        if line.contains("Seq Scan") {
            found.push(line.trim().to_owned());
        }
        if line.contains("Index Scan") || line.contains("Index Only Scan") {
            // The node's details follow it, up to the next node.
            let conditioned = plan[at + 1..]
                .iter()
                .take_while(|detail| !detail.contains("->"))
                .any(|detail| detail.contains("Index Cond"));
            if !conditioned {
                found.push(format!("{} (no index condition)", line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_checker_sees_scans_and_unconditioned_index_walks() {
    let plan = |text: &str| text.lines().map(str::to_owned).collect::<Vec<_>>();
    assert!(problems(&plan("Index Scan using a on t\n  Index Cond: (x = $1)")).is_empty());
    assert_eq!(problems(&plan("Seq Scan on t\n  Filter: (x = 1)")).len(), 1);
    assert_eq!(
        problems(&plan("Index Scan using a on t\n  Filter: (x = 1)\n  ->  Index Scan using b on u\n        Index Cond: (y = 1)")).len(),
        1
    );
}

#[tokio::test]
async fn no_statement_scans_a_table() {
    let database = TestDatabase::create().await;
    drop(database.store("reads").await);
    let client = database.client().await;
    client
        .batch_execute("SET search_path = reads; SET enable_seqscan = off;")
        .await
        .expect("settings");
    let mut failures = Vec::new();
    for (name, sql, arguments) in hayabusa_postgres::statements_to_explain() {
        client
            .batch_execute(&format!("PREPARE probe AS {sql}"))
            .await
            .unwrap_or_else(|error| panic!("prepare {name}: {error}"));
        let plan: Vec<String> = client
            .simple_query(&if arguments.is_empty() {
                "EXPLAIN EXECUTE probe".to_owned()
            } else {
                format!("EXPLAIN EXECUTE probe ({arguments})")
            })
            .await
            .unwrap_or_else(|error| panic!("explain {name}: {error}"))
            .into_iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .collect();
        client
            .batch_execute("DEALLOCATE probe")
            .await
            .expect("deallocate");
        assert!(!plan.is_empty(), "{name} has a plan");
        let found = problems(&plan);
        if !found.is_empty() {
            failures.push(format!("{name}: {found:?}\n{}", plan.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    drop(client);
    database.drop().await;
}
