-- course_configuration_analysis: one row per course_id, its layout and round mix from fact_rounds
-- (the sums of gold.course_start_coverage, fact_rounds added up per course, ingest date and start
-- hole).
-- Formulas as REFERENCE §3.3 (pct columns are percentages 0–100, 1 dp, of total_rounds;
-- pct_single_nine / pct_two_nines / pct_all_three_nines only for 27-hole courses; the complexity
-- score's thresholds compare the unrounded percentages). Deliberate differences:
--   * added is_loop_course (the reference's dashboard queried it but nothing created it,
--     REFERENCE §8.2 #7): no hole above 9 yet rounds covering more than one nine (or sections
--     beyond 27), i.e. a 9-hole course played around twice for 18;
--   * added max_nines_in_round to the output (the reference computed it but dropped it);
--   * course_complexity_score is BIGINT (its terms are whole numbers).
WITH per_course AS (
    SELECT
        course_id,
        SUM(rounds) AS total_rounds,
        MAX(max_section_number) AS max_section_seen,
        MAX(max_hole_number) AS max_hole_seen,
        MAX(max_holes_played) AS max_holes_in_round,
        MAX(max_nines_played) AS max_nines_in_round,
        SUM(nine_hole_rounds) AS nine_hole_rounds,
        SUM(full_rounds) AS full_rounds,
        SUM(complete_rounds) AS complete_rounds,
        SUM(incomplete_rounds) AS incomplete_rounds,
        COUNT(DISTINCT start_hole) AS unique_start_holes,
        SUM(CASE WHEN start_hole = 1 THEN rounds ELSE 0 END) AS first_hole_start_rounds,
        SUM(CASE WHEN start_hole <> 1 THEN rounds ELSE 0 END) AS shotgun_start_rounds,
        SUM(single_nine_rounds) AS single_nine_rounds,
        SUM(two_nine_rounds) AS two_nine_rounds,
        SUM(three_nine_rounds) AS three_nine_rounds,
        CAST(SUM(fix_count_sum) AS DOUBLE) / NULLIF(SUM(fix_count_rounds), 0) AS avg_fix_count,
        MIN(min_fix_count) AS min_fix_count,
        MAX(max_fix_count) AS max_fix_count
    FROM gold.course_start_coverage
    GROUP BY course_id
),
shares AS (
    SELECT
        per_course.*,
        CASE
            WHEN max_section_seen > 54 THEN '27-hole'
            WHEN max_section_seen > 27 THEN '18-hole'
            ELSE '9-hole'
        END AS likely_course_type,
        COALESCE(max_hole_seen <= 9 AND (max_nines_in_round >= 2 OR max_section_seen > 27), FALSE) AS is_loop_course,
        100.0 * complete_rounds / NULLIF(total_rounds, 0) AS complete_pct,
        100.0 * incomplete_rounds / NULLIF(total_rounds, 0) AS incomplete_pct,
        100.0 * nine_hole_rounds / NULLIF(total_rounds, 0) AS nine_hole_pct,
        100.0 * full_rounds / NULLIF(total_rounds, 0) AS full_pct,
        100.0 * shotgun_start_rounds / NULLIF(total_rounds, 0) AS shotgun_pct,
        100.0 * single_nine_rounds / NULLIF(total_rounds, 0) AS single_nine_pct,
        100.0 * two_nine_rounds / NULLIF(total_rounds, 0) AS two_nines_pct,
        100.0 * three_nine_rounds / NULLIF(total_rounds, 0) AS three_nines_pct
    FROM per_course
)
SELECT
    course_id,
    total_rounds,
    likely_course_type,
    is_loop_course,
    max_section_seen,
    max_holes_in_round,
    max_nines_in_round,
    ROUND(complete_pct, 1) AS pct_complete,
    ROUND(incomplete_pct, 1) AS pct_incomplete,
    ROUND(nine_hole_pct, 1) AS pct_nine_hole,
    ROUND(full_pct, 1) AS pct_full_rounds,
    unique_start_holes,
    ROUND(shotgun_pct, 1) AS pct_shotgun_starts,
    CASE WHEN likely_course_type = '27-hole' THEN ROUND(single_nine_pct, 1) END AS pct_single_nine,
    CASE WHEN likely_course_type = '27-hole' THEN ROUND(two_nines_pct, 1) END AS pct_two_nines,
    CASE WHEN likely_course_type = '27-hole' THEN ROUND(three_nines_pct, 1) END AS pct_all_three_nines,
    ROUND(avg_fix_count, 0) AS avg_locations_per_round,
    min_fix_count AS min_locations_per_round,
    max_fix_count AS max_locations_per_round,
    unique_start_holes * 10
        + CASE likely_course_type WHEN '27-hole' THEN 30 WHEN '18-hole' THEN 20 ELSE 10 END
        + CASE WHEN nine_hole_pct > 20 THEN 10 ELSE 0 END
        + CASE WHEN incomplete_pct > 10 THEN 5 ELSE 0 END AS course_complexity_score
FROM shares
ORDER BY course_complexity_score DESC, course_id
