-- fact_fix_pace: one row per non-padding fix (latest ingest_date of its round only), the few
-- columns the pace-gap medians and the time patterns need: global_time_patterns,
-- global_course_summary and global_overview read this narrow table instead of joining all of
-- silver on every run (an exact median needs every value; this keeps them, pre-joined).
-- Not in the reference. hour_of_day and iso_weekday (1 = Monday … 7 = Sunday) are of
-- fix_timestamp in the course's local time (its profile's time zone; UTC without a profile),
-- NULL without a timestamp. Its position (nine, hole, section), pace and coordinates feed
-- course_section_summary (pace by section, the section map of the topology page).
WITH fixes AS (
    SELECT
        s.course_id,
        s.round_id,
        s.ingest_date,
        s.location_index,
        timezone(COALESCE(p.timezone, 'UTC'), s.fix_timestamp) AS fix_local,
        s.is_problem,
        s.pace_gap,
        s.nine_number,
        s.hole_number,
        s.section_number,
        s.pace,
        s.latitude,
        s.longitude
    FROM silver.fact_telemetry_event AS s
    JOIN gold.silver_round_latest AS l
      ON s.course_id = l.course_id
     AND s.round_id = l.round_id
     AND s.ingest_date = l.latest_ingest_date
    LEFT JOIN gold.dim_course_profile AS p ON p.course_id = s.course_id
    WHERE NOT s.is_location_padding
)
SELECT
    course_id,
    round_id,
    ingest_date,
    location_index,
    CAST(date_part('hour', fix_local) AS INT) AS hour_of_day,
    CAST(date_part('isodow', fix_local) + 1 AS INT) AS iso_weekday,
    is_problem,
    pace_gap,
    nine_number,
    hole_number,
    section_number,
    pace,
    latitude,
    longitude
FROM fixes
