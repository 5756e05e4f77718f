-- course_round_calendar: gold.fact_rounds counted per (course_id, ingest_date, month_start,
-- month_number, weekday_number, round_length): the local month and ISO weekday of each round's
-- first fix (the sentinel month 1900-01-01, month 0 and weekday 0 when it has no timestamp), with
-- its complete rounds and first/last start. A round sits under its latest ingest date only
-- (fact_rounds has one row per round), so the rows of different ingest dates add up to the
-- course's figures: course_rounds_by_month, course_rounds_by_weekday and dim_course sum these
-- few rows instead of one row per round of the whole history on every run. Not in the reference.
WITH rounds AS (
    SELECT
        course_id,
        ingest_date,
        COALESCE(CAST(date_trunc('month', round_start_local) AS DATE), DATE '1900-01-01') AS month_start,
        COALESCE(round_month, 0) AS month_number,
        COALESCE(round_weekday, 0) AS weekday_number,
        round_length,
        is_complete,
        round_start_ts
    FROM gold.fact_rounds
)
SELECT
    course_id,
    ingest_date,
    month_start,
    month_number,
    weekday_number,
    round_length,
    COUNT(*) AS rounds,
    SUM(CASE WHEN is_complete THEN 1 ELSE 0 END) AS complete_rounds,
    MIN(round_start_ts) AS first_round_start_ts,
    MAX(round_start_ts) AS last_round_start_ts
FROM rounds
GROUP BY course_id, ingest_date, month_start, month_number, weekday_number, round_length
