-- round_progression: one row per (course_id, round_id), how the round moved over the course: its
-- non-padding fixes with a hole and a section (latest ingest_date only), in location_index order,
-- and the steps from one fix to the next. REFERENCE §6 "Progression", with two deliberate
-- differences:
--   * a hole step is fine when it stays, goes to the next hole, or wraps from the last hole of a
--     nine or loop (9, 18, 27) to hole 1 (a round started on the back nine, a loop played twice);
--     it is an anomaly when it goes backwards (hole_backward_steps) or skips holes
--     (hole_skip_steps);
--   * a section step is an anomaly only when it goes backwards within the same hole
--     (section_backward_steps): devices send a fix every few sections, so skipped sections are
--     normal (the reference counted them and flagged most rounds for review).
-- progression_class: clean (no anomaly), minor_issues (at most 2 hole and 5 section anomalies),
-- needs_review (more), no_positions (fewer than two positioned fixes).
WITH silver_latest AS (
    SELECT s.course_id, s.round_id, s.ingest_date, s.location_index, s.hole_number, s.section_number
    FROM silver.fact_telemetry_event AS s
    JOIN gold.silver_round_latest AS l
      ON s.course_id = l.course_id
     AND s.round_id = l.round_id
     AND s.ingest_date = l.latest_ingest_date
    WHERE NOT s.is_location_padding
      AND s.hole_number IS NOT NULL
      AND s.section_number IS NOT NULL
),
steps AS (
    SELECT
        course_id,
        round_id,
        ingest_date,
        hole_number,
        section_number,
        LAG(hole_number) OVER (PARTITION BY course_id, round_id ORDER BY location_index) AS prev_hole,
        LAG(section_number) OVER (PARTITION BY course_id, round_id ORDER BY location_index) AS prev_section
    FROM silver_latest
),
counted AS (
    SELECT
        course_id,
        round_id,
        MAX(ingest_date) AS ingest_date,
        COUNT(*) AS positioned_fixes,
        COUNT(prev_hole) AS steps,
        SUM(CASE
                WHEN hole_number < prev_hole AND NOT (hole_number = 1 AND prev_hole IN (9, 18, 27)) THEN 1
                ELSE 0
            END) AS hole_backward_steps,
        SUM(CASE WHEN hole_number > prev_hole + 1 THEN 1 ELSE 0 END) AS hole_skip_steps,
        SUM(CASE WHEN hole_number = prev_hole AND section_number < prev_section THEN 1 ELSE 0 END)
            AS section_backward_steps
    FROM steps
    GROUP BY course_id, round_id
)
SELECT
    course_id,
    round_id,
    ingest_date,
    positioned_fixes,
    steps,
    hole_backward_steps,
    hole_skip_steps,
    section_backward_steps,
    CASE
        WHEN steps = 0 THEN 'no_positions'
        WHEN hole_backward_steps + hole_skip_steps + section_backward_steps = 0 THEN 'clean'
        WHEN hole_backward_steps + hole_skip_steps <= 2 AND section_backward_steps <= 5 THEN 'minor_issues'
        ELSE 'needs_review'
    END AS progression_class
FROM counted
