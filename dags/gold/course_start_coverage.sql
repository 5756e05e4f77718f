-- course_start_coverage: gold.fact_rounds added up per (course_id, ingest_date, start_hole): how
-- many rounds, of which complete, nine-hole and by nines played, the sums and extremes of their
-- fixes and the section figures the start-hole checks compare. A round sits under its latest
-- ingest date only (fact_rounds has one row per round), so the rows of different ingest dates
-- never count a round twice and add up to the course's figures: course_start_hole_distribution
-- and course_configuration_analysis sum these few rows instead of one row per round of the whole
-- history on every run. start_hole is NULL for the rounds without a known start hole. Not in the
-- reference.
SELECT
    course_id,
    ingest_date,
    start_hole,
    COUNT(*) AS rounds,
    SUM(CASE WHEN is_complete THEN 1 ELSE 0 END) AS complete_rounds,
    SUM(CASE WHEN is_complete = FALSE THEN 1 ELSE 0 END) AS incomplete_rounds,
    SUM(CASE WHEN is_nine_hole THEN 1 ELSE 0 END) AS nine_hole_rounds,
    SUM(CASE WHEN is_nine_hole THEN 0 ELSE 1 END) AS full_rounds,
    SUM(CASE WHEN nines_played = 1 THEN 1 ELSE 0 END) AS single_nine_rounds,
    SUM(CASE WHEN nines_played = 2 THEN 1 ELSE 0 END) AS two_nine_rounds,
    SUM(CASE WHEN nines_played >= 3 THEN 1 ELSE 0 END) AS three_nine_rounds,
    MAX(max_section_number) AS max_section_number,
    MAX(max_hole_number) AS max_hole_number,
    MAX(holes_played) AS max_holes_played,
    MAX(nines_played) AS max_nines_played,
    SUM(fix_count) AS fix_count_sum,
    COUNT(fix_count) AS fix_count_rounds,
    MIN(fix_count) AS min_fix_count,
    MAX(fix_count) AS max_fix_count,
    MIN(min_section_number) AS min_min_section_number,
    MAX(min_section_number) AS max_min_section_number,
    MIN(start_section) AS min_start_section,
    MAX(start_section) AS max_start_section,
    MIN(first_tee_section_number) AS min_first_tee_section_number,
    MAX(first_tee_section_number) AS max_first_tee_section_number
FROM gold.fact_rounds
GROUP BY course_id, ingest_date, start_hole
