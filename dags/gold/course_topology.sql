-- course_topology: one row per (course_id, nine_number), the course's nines ("units") as
-- observed in silver.
-- Replaces the reference's seed silver.dim_facility_topology, which tmctl does not have: the
-- units are derived from silver itself, from the nine_number of every non-padding fix (latest
-- ingest_date per round). section_start/section_end are the lowest/highest section seen in the
-- nine. unit_id = nine_number (as in the reference). unit_name follows the reference's naming
-- (1 unit: Course; 2: Front Nine/Back Nine; 3: Front/Middle/Back Nine; more: Nine <n>) except
-- for loop courses (no hole above 9 but more than one nine, i.e. a 9-hole course played around
-- twice), whose units are named Loop <n>.
-- Being an aggregate, it has exactly one row per (course_id, nine_number) (tested): joining it
-- cannot fan out (the reference's fact_round_hole_performance could, REFERENCE §8.2 #8).
-- Combines the per-(round, nine, hole) figures of gold.round_hole_profile, not silver.
WITH per_nine AS (
    SELECT
        course_id,
        nine_number,
        MIN(min_section_number) AS section_start,
        MAX(max_section_number) AS section_end,
        MIN(hole_number) AS min_hole_number,
        MAX(hole_number) AS max_hole_number,
        COUNT(DISTINCT hole_number) AS holes_observed,
        COUNT(DISTINCT round_id) AS rounds_observed,
        SUM(fix_count) AS fix_count
    FROM gold.round_hole_profile
    GROUP BY course_id, nine_number
),
per_course AS (
    SELECT
        per_nine.*,
        COUNT(*) OVER (PARTITION BY course_id) AS unit_count,
        ROW_NUMBER() OVER (PARTITION BY course_id ORDER BY nine_number) AS unit_position,
        MAX(max_hole_number) OVER (PARTITION BY course_id) AS course_max_hole_number
    FROM per_nine
)
SELECT
    course_id,
    nine_number,
    nine_number AS unit_id,
    CASE
        WHEN course_max_hole_number <= 9 AND unit_count > 1 THEN concat('Loop ', CAST(nine_number AS VARCHAR))
        WHEN unit_count = 1 THEN 'Course'
        WHEN unit_count = 2 THEN CASE unit_position WHEN 1 THEN 'Front Nine' ELSE 'Back Nine' END
        WHEN unit_count = 3 THEN CASE unit_position WHEN 1 THEN 'Front Nine' WHEN 2 THEN 'Middle Nine' ELSE 'Back Nine' END
        ELSE concat('Nine ', CAST(nine_number AS VARCHAR))
    END AS unit_name,
    section_start,
    section_end,
    min_hole_number,
    max_hole_number,
    holes_observed,
    rounds_observed,
    fix_count,
    unit_count
FROM per_course
