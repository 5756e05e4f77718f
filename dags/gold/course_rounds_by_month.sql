-- course_rounds_by_month: one row per (course_id, month_start), rounds by the month of their
-- first fix in the course's local time (fact_rounds.round_start_local). Rounds without any timestamp land in the
-- sentinel month 1900-01-01, month_number 0, "Unknown (missing timestamp)".
-- As REFERENCE §3.3 (pct_total = share of the course's rounds, 0–100, 2 dp); month names are
-- spelled out in SQL instead of a locale-dependent date format. Sums gold.course_round_calendar
-- (fact_rounds counted per course, ingest date, month and weekday).
WITH counted AS (
    SELECT course_id, month_start, month_number, SUM(rounds) AS rounds
    FROM gold.course_round_calendar
    GROUP BY course_id, month_start, month_number
)
SELECT
    course_id,
    month_start,
    month_number,
    CASE month_number
        WHEN 1 THEN 'January' WHEN 2 THEN 'February' WHEN 3 THEN 'March' WHEN 4 THEN 'April'
        WHEN 5 THEN 'May' WHEN 6 THEN 'June' WHEN 7 THEN 'July' WHEN 8 THEN 'August'
        WHEN 9 THEN 'September' WHEN 10 THEN 'October' WHEN 11 THEN 'November' WHEN 12 THEN 'December'
        ELSE 'Unknown (missing timestamp)'
    END AS month_name,
    rounds,
    ROUND(100.0 * rounds / NULLIF(SUM(rounds) OVER (PARTITION BY course_id), 0), 2) AS pct_total
FROM counted
