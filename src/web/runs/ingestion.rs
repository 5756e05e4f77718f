//! `/ingestion`: the ingestion registry, filtered and paged.

use super::*;

pub(super) struct IngestLine {
    id: i64,
    created: String,
    layer: String,
    course: String,
    date: String,
    filename: String,
    status: &'static str,
    reason: String,
    size: String,
    rows: String,
    run_pk: Option<i64>,
    task_id: String,
}

pub(super) struct Choice {
    value: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "runs/ingestion.html")]
pub(super) struct IngestionPage {
    chrome: Chrome,
    rows: Vec<IngestLine>,
    statuses: Vec<Choice>,
    courses: Vec<Choice>,
    status: String,
    course: String,
    older: Option<i64>,
}

#[derive(Deserialize)]
pub(super) struct IngestionQuery {
    status: Option<String>,
    course: Option<String>,
    before: Option<i64>,
}

pub(super) async fn ingestion(
    State(d): State<Arc<Daemon>>,
    viewer: Viewer,
    Query(q): Query<IngestionQuery>,
) -> PageResult {
    let status_text = q.status.unwrap_or_default();
    let course = q.course.unwrap_or_default();
    let status = match status_text.as_str() {
        "" => None,
        s => Some(s.parse::<IngestStatus>().map_err(|_| {
            let all: Vec<&str> = IngestStatus::ALL.iter().map(|s| s.as_str()).collect();
            error_page(StatusCode::BAD_REQUEST, &viewer, format!("status `{s}` is not one of {}", all.join(", ")))
        })?),
    };
    let course_filter = Some(course.as_str()).filter(|c| !c.is_empty());
    let rows = d
        .store
        .ingestions_page(status, course_filter, q.before, INGESTIONS_PER_PAGE)
        .await
        .map_err(|e| db_error(&viewer, e))?;
    let courses = d.store.ingestion_courses().await.map_err(|e| db_error(&viewer, e))?;
    let older = (rows.len() as i64 == INGESTIONS_PER_PAGE).then(|| rows.last().map(|r| r.id)).flatten();
    let page = IngestionPage {
        chrome: Chrome::new("Ingestion registry", &viewer),
        rows: rows
            .iter()
            .map(|r| IngestLine {
                id: r.id,
                created: view::utc(r.created_at),
                layer: r.layer.clone(),
                course: r.course_id.clone().unwrap_or_default(),
                date: r.ingest_date.map(|x| x.to_string()).unwrap_or_default(),
                filename: r.filename.clone(),
                status: r.status.as_str(),
                reason: r.reason.clone().unwrap_or_default(),
                size: r.size_bytes.map(view::bytes).unwrap_or_default(),
                rows: r.row_count.map(view::int).unwrap_or_default(),
                run_pk: r.run_pk,
                task_id: r.task_id.clone().unwrap_or_default(),
            })
            .collect(),
        statuses: IngestStatus::ALL
            .iter()
            .map(|s| Choice { value: s.as_str().to_string(), selected: s.as_str() == status_text })
            .collect(),
        courses: courses.into_iter().map(|c| Choice { selected: c == course, value: c }).collect(),
        status: status_text,
        course,
        older,
    };
    Ok(render(&page))
}
