-- course_start_hole_distribution: one row per (course_id, start_hole) over the rounds of
-- fact_rounds with a known start hole: how often each start hole is used (shotgun starts show
-- up as start holes other than 1) and whether the configured start matches the observed sections.
-- Formulas as REFERENCE §3.3: totals are over the course's rounds with a known start hole;
-- pct_rounds_with_this_start = share of those rounds, pct_complete_rounds_with_this_start = share
-- of their complete rounds (percentages 0–100, 2 dp; NULL when the course has no complete round).
-- Sums gold.course_start_coverage (fact_rounds added up per course, ingest date and start hole).
WITH started AS (
    SELECT * FROM gold.course_start_coverage WHERE start_hole IS NOT NULL
),
totals AS (
    SELECT
        course_id,
        SUM(rounds) AS total_rounds,
        SUM(complete_rounds) AS total_complete_rounds,
        COUNT(DISTINCT start_hole) AS distinct_start_holes
    FROM started
    GROUP BY course_id
),
per_start AS (
    SELECT
        course_id,
        start_hole,
        SUM(rounds) AS rounds_with_this_start,
        SUM(complete_rounds) AS complete_rounds_with_this_start,
        MIN(min_min_section_number) AS min_min_section_number,
        MAX(max_min_section_number) AS max_min_section_number,
        MIN(min_start_section) AS min_start_section,
        MAX(max_start_section) AS max_start_section,
        MIN(min_first_tee_section_number) AS min_first_tee_section_number,
        MAX(max_first_tee_section_number) AS max_first_tee_section_number
    FROM started
    GROUP BY course_id, start_hole
)
SELECT
    p.course_id,
    p.start_hole,
    p.rounds_with_this_start,
    p.complete_rounds_with_this_start,
    t.total_rounds,
    t.total_complete_rounds,
    t.distinct_start_holes,
    ROUND(100.0 * p.rounds_with_this_start / NULLIF(t.total_rounds, 0), 2) AS pct_rounds_with_this_start,
    ROUND(100.0 * p.complete_rounds_with_this_start / NULLIF(t.total_complete_rounds, 0), 2)
        AS pct_complete_rounds_with_this_start,
    p.min_min_section_number,
    p.max_min_section_number,
    p.min_start_section,
    p.max_start_section,
    p.min_first_tee_section_number,
    p.max_first_tee_section_number
FROM per_start AS p
JOIN totals AS t ON t.course_id = p.course_id
